"""torch's own op tests, as cases for lthost's generic operator call (issue 16): every OpInfo
of `torch.testing._internal.common_methods_invocations.op_db`, its CPU sample inputs in
float32, float64 and int64 (one entry per OpInfo and dtype)
run by torch under a dispatch mode that records each ATen operator call the sample makes
(the overload, its arguments as the dispatcher receives them, its results). lthost replays
each call through `engine::aten::Op` and compares the results (tests/e2e/opinfo.rs).

Recorded per OpInfo: at most SAMPLES samples, at most CALLS calls each, calls whose tensors
are float32/float64/int/bool and at most MAX_NUMEL elements each; ops tagged
`nondeterministic_seeded` (random draws) and in-place or out= calls are left out, and every
OpInfo left without a case is counted with why.

    .venv/bin/python tests/reference/opinfo_reference.py tests/reference/opinfo.json
"""

import json
import sys
import warnings

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# The sample dtypes: an OpInfo entry per OpInfo and dtype (float32's named plainly).
RUN_DTYPES = {torch.float32: "", torch.float64: " [float64]", torch.int64: " [int64]"}
SAMPLES = 2
CALLS = 3
MAX_NUMEL = 4096
DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.int64: "i64", torch.int32: "i32", torch.bool: "bool",
          torch.uint8: "u8", torch.int8: "i8", torch.int16: "i16"}
# c10::ScalarType, Layout and MemoryFormat numbering (as the dispatcher receives them).
SCALAR_TYPE = {torch.uint8: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3, torch.int64: 4, torch.float16: 5,
               torch.float32: 6, torch.float64: 7, torch.bool: 11, torch.bfloat16: 15}
MEMORY_FORMAT = {torch.contiguous_format: 0, torch.preserve_format: 1, torch.channels_last: 2, torch.channels_last_3d: 3}


class Unsupported(Exception):
    pass


def tensor(t):
    if t.dtype not in DTYPES:
        raise Unsupported(f"dtype {t.dtype}")
    if t.numel() > MAX_NUMEL:
        raise Unsupported("a large tensor")
    if t.is_sparse or t.layout != torch.strided or t.is_nested:
        raise Unsupported("a non-strided tensor")
    t = t.detach()
    values = t.double().flatten().tolist() if t.is_floating_point() else t.flatten().tolist()
    # NaN and infinities as strings (JSON has no such numbers).
    values = [v if isinstance(v, (int, bool)) or v == v and abs(v) != float("inf") else str(v) for v in values]
    return {"t": "tensor", "dtype": DTYPES[t.dtype], "shape": list(t.shape), "values": values}


def value(v):
    if isinstance(v, torch.Tensor):
        return tensor(v)
    if v is None:
        return {"t": "none"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": v}
    if isinstance(v, float):
        if v != v or abs(v) == float("inf"):
            return {"t": "float", "v": str(v)}
        return {"t": "float", "v": v}
    if isinstance(v, torch.dtype):
        if v not in SCALAR_TYPE:
            raise Unsupported(f"dtype argument {v}")
        return {"t": "int", "v": SCALAR_TYPE[v]}
    if isinstance(v, torch.memory_format):
        return {"t": "int", "v": MEMORY_FORMAT[v]}
    if isinstance(v, torch.layout):
        if v != torch.strided:
            raise Unsupported(f"layout {v}")
        return {"t": "int", "v": 0}
    if isinstance(v, torch.device):
        return {"t": "str", "v": str(v)}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, bool) for x in v) and v:
            return {"t": "bools", "v": list(v)}
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return {"t": "ints", "v": list(v)}
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return {"t": "floats", "v": [float(x) for x in v]}
        if all(isinstance(x, torch.Tensor) or x is None for x in v):
            return {"t": "tensors", "v": [None if x is None else tensor(x) for x in v]}
    raise Unsupported(f"an argument of type {type(v).__name__}")


class Recorder(TorchDispatchMode):
    """Serialises each call as it happens (a later in-place op of the same sample must not
    change what was recorded); a call it cannot record leaves its reason."""

    def __init__(self):
        super().__init__()
        self.calls, self.replays, self.why = [], [], None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        before = None
        if len(self.calls) < CALLS:
            try:
                before = (func, [value(a) for a in args], {k: value(v) for k, v in kwargs.items()})
                check_call(func, args)
            except Unsupported as e:
                self.why, before = str(e), None
        out = func(*args, **kwargs)
        if before is not None:
            try:
                case = record_call(*before, out)
                # The gradients are computed after the sample, outside this mode (autograd
                # does not record below the Python dispatch key); on copies made now.
                copies = [a.detach().clone() if isinstance(a, torch.Tensor) else a for a in args]
                self.calls.append(case)
                self.replays.append((func, copies, kwargs))
            except Unsupported as e:
                self.why = str(e)
        return out


def check_call(func, args):
    schema = func._schema
    if schema.is_mutable or any(a.is_out for a in schema.arguments):
        raise Unsupported("in-place or out=")
    if torch.Tag.nondeterministic_seeded in func.tags:
        raise Unsupported("random")
    # A view of raw storage: its values depend on the input's storage, which is not recorded.
    if schema.name.startswith("aten::as_strided") and any(
            isinstance(a, torch.Tensor) and (a.storage_offset() != 0 or a.untyped_storage().nbytes() != a.numel() * a.element_size()
                                             or not a.is_contiguous()) for a in args):
        raise Unsupported("as_strided of a view")


def weights(t):
    """The fixed output weights of the gradient check: linspace(-1, 1) in the output's shape
    (no generator draw, so lthost makes the same ones)."""
    return torch.linspace(-1, 1, t.numel(), dtype=t.dtype).view(t.shape)


def grads(func, args, kwargs):
    """d/d(each floating tensor argument) of sum(out_i * weights(out_i)) over the floating
    tensor results, computed by torch on the same call (outside the recorder); None where an
    argument gets none, or for the whole call when it has no backward."""
    leaves = [a.detach().clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    inputs = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
    if not inputs:
        return None
    try:
        with torch.enable_grad():
            out = func(*leaves, **kwargs)
            outs = out if isinstance(out, (tuple, list)) else [out]
            outs = [o for o in outs if isinstance(o, torch.Tensor) and o.is_floating_point() and o.requires_grad]
            if not outs:
                return None
            loss = sum((o * weights(o)).sum() for o in outs)
            gs = torch.autograd.grad(loss, inputs, allow_unused=True)
    except (RuntimeError, NotImplementedError):
        return None
    it = iter(gs)
    return [None if not (isinstance(a, torch.Tensor) and a.requires_grad) else (lambda g: None if g is None else tensor(g))(next(it))
            for a in leaves]


def record_call(func, args, kwargs, out):
    """One call, its arguments already serialised; `empty*` results (uninitialised memory)
    are compared by shape and dtype only."""
    schema = func._schema
    if len(schema.returns) == 0:
        outs = []
    elif isinstance(out, list):  # one Tensor[] result
        outs = [out]
    elif isinstance(out, tuple):
        outs = list(out)
    else:
        outs = [out]
    results = [value(o) for o in outs]
    if "empty" in schema.name:
        for r in results:
            if r["t"] == "tensor":
                r["values"] = None
    return {
        "op": f"{schema.name}{'.' + schema.overload_name if schema.overload_name else ''}",
        "args": args,
        "kwargs": kwargs,
        "out": results,
    }


def main(path):
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from torch.testing._internal.common_methods_invocations import op_db

    cases, skipped = [], {}
    entries = [(info, dtype) for dtype in RUN_DTYPES for info in op_db]
    for info, dtype in entries:
        name = info.name + (f" ({info.variant_test_name})" if info.variant_test_name else "") + RUN_DTYPES[dtype]
        if not info.supports_dtype(dtype, "cpu"):
            skipped[name] = f"no {dtype} on CPU"
            continue
        made, why = 0, "no sample"
        try:
            samples = list(info.sample_inputs("cpu", dtype, requires_grad=False))[:SAMPLES]
        except Exception as e:  # noqa: BLE001 - an OpInfo that cannot make samples here
            skipped[name] = f"samples: {type(e).__name__}"
            continue
        for i, s in enumerate(samples):
            torch.manual_seed(0)
            rec = Recorder()
            try:
                with rec:
                    info.op(s.input, *s.args, **s.kwargs)
            except Exception as e:  # noqa: BLE001
                why = f"torch raised {type(e).__name__}"
                continue
            why = rec.why or why
            for case, replay in zip(rec.calls, rec.replays):
                try:
                    case["grads"] = None if "empty" in case["op"] else grads(*replay)
                except (Unsupported, RuntimeError):  # no comparable gradient (unallocated, ...)
                    case["grads"] = None
                case["opinfo"], case["sample"] = name, i
                cases.append(case)
                made += 1
        if made == 0:
            skipped[name] = why
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "opinfos": len(entries), "cases": cases, "skipped": skipped}, f)
    print(f"wrote {path}: {len(cases)} calls from {len(entries) - len(skipped)} of {len(entries)} OpInfo entries "
          f"({len(op_db)} OpInfos × {len(RUN_DTYPES)} dtypes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/opinfo.json")
