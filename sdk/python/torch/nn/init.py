"""torch.nn.init: the same draws, in the same order, as torch's (so a seed gives torch's
weights); every function works in place under no_grad and returns the tensor; with
`generator=g` (a torch.Generator) its draws come from g."""

import functools
import inspect
import math

from .. import _core, no_grad


def _drawn(fn):
    """`fn(..., generator=g)` drawing from torch.Generator g (None: the run's generator)."""
    at = list(inspect.signature(fn).parameters).index("generator")

    @functools.wraps(fn)
    def run(*args, **kwargs):
        g = kwargs.get("generator", args[at] if len(args) > at else None)
        if g is None:
            return fn(*args, **kwargs)
        with g._drawing():
            return fn(*args, **kwargs)

    return run


def calculate_gain(nonlinearity, param=None):
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(tensor, mode):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    return fan_in if mode == "fan_in" else fan_out


@_drawn
def uniform_(tensor, a=0.0, b=1.0, generator=None):
    with no_grad():
        _core.direct("aten::uniform_", _core.T(tensor), _core.F(a), _core.F(b))
    return tensor


@_drawn
def normal_(tensor, mean=0.0, std=1.0, generator=None):
    with no_grad():
        _core.direct("aten::normal_", _core.T(tensor), _core.F(mean), _core.F(std))
    return tensor


def constant_(tensor, val):
    with no_grad():
        _core.direct("aten::fill_.Scalar", _core.T(tensor), _core.S(val))
    return tensor


def zeros_(tensor):
    with no_grad():
        _core.direct("aten::zero_", _core.T(tensor))
    return tensor


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    from .. import eye

    with no_grad():
        tensor.copy_(eye(tensor.shape[0], tensor.shape[1]))
    return tensor


@_drawn
def xavier_uniform_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a)


@_drawn
def xavier_normal_(tensor, gain=1.0, generator=None):
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


@_drawn
def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if 0 in tensor.shape:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


@_drawn
def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    if 0 in tensor.shape:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode)))


@_drawn
def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """torch 2.13's method: redraws out-of-range normals when [a, b] holds more than 30% of
    the mass, else accepts or rejects uniform candidates by the density (the Rust SDK's
    `init::trunc_normal_` does the same ops)."""

    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with no_grad():
        if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:
            lo = tensor.new_tensor(a).item()
            hi = tensor.new_tensor(b).item()
            result = tensor.normal_(mean, std)
            replaced = False
            while True:
                mask = (result < lo) | (result > hi)
                if not mask.any().item():
                    break
                fresh = _core.call("empty_like", (result,), {}).normal_(mean, std)
                result = _core.call("where", (mask, fresh, result), {})
                replaced = True
            if replaced:
                tensor.copy_(result)
        else:
            mode = max(a, min(mean, b))
            log_peak = -0.5 * ((mode - mean) / std) ** 2
            candidates = _core.call("empty_like", (tensor,), {})
            accept = _core.call("empty_like", (tensor,), {})

            def log_pdf(c):
                c.sub_(mean).div_(std).pow_(2).mul_(-0.5).sub_(log_peak)

            def rejects(c):
                return accept.uniform_(0.0, 1.0).log_() > c

            tensor.uniform_(a, b)
            candidates.copy_(tensor)
            log_pdf(candidates)
            pending = rejects(candidates)
            if pending.any().item():
                result = _core.call("alias", (tensor,), {})
                while True:
                    candidates.uniform_(a, b)
                    result = _core.call("where", (pending, candidates, result), {})
                    log_pdf(candidates)
                    pending = _core.call("where", (pending, rejects(candidates), pending), {})
                    if not pending.any().item():
                        break
                tensor.copy_(result)
    return tensor


@_drawn
def orthogonal_(tensor, gain=1, generator=None):
    rows = tensor.shape[0]
    cols = tensor.numel() // max(rows, 1)
    with no_grad():
        flat = tensor.new_empty([rows, cols]).normal_(0.0, 1.0)
        if rows < cols:
            flat = flat.t()
        q, r = _core.call("linalg_qr", (flat, "reduced"), {})
        q = q * r.diag(0).sign()
        if rows < cols:
            q = q.t()
        tensor.copy_(q.view(list(tensor.shape)))
        tensor.mul_(gain)
    return tensor
