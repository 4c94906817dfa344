"""Generates the SDKs' typed ATen bindings (Rust `sdk/src/aten_ops.rs`; Python, JavaScript and
C by `tools/gen_ops_sdks.py`, with the same names) from torch's own
operator schemas: every `aten` operator in libtorch's dispatcher that a plugin may call (the
host's denylist, `host/src/engine/aten_denylist.rs`, is read and honoured), except `out=`
forms and schemas whose types a plugin cannot pass (named dimensions, storages, streams,
complex numbers).

Each overload becomes a free function `f_<name>` returning `Result<_, TorchError>` (torch's
message, as a Python RuntimeError carries it) and `<name>` that panics with that message,
as tch's `f_` split; an overload whose first argument is `Tensor self` is also a method of
[`AtenOps`], implemented for `Tensor`. Names are torch's: the overload with no name (or the
only one, else `Tensor`, else `int`) keeps the bare name, others add their overload name
(`masked_fill_scalar`, `sum_dim_intlist`); in-place forms keep the trailing `_`.

Run by `make` (the file is regenerated when this script or torch changes);
`python tools/gen_ops.py --check` fails when the committed file is stale.
"""

import argparse
import re
import sys
from pathlib import Path

import torch

import gen_ops_sdks
from torchgen.model import BaseTy, BaseType, FunctionSchema, ListType, OptionalType

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sdk" / "src" / "aten_ops.rs"
PY_OUT = ROOT / "sdk" / "python" / "lthost" / "aten_ops.py"
TORCH_OUT = ROOT / "sdk" / "python" / "torch" / "_schemas.py"
JS_SDK = ROOT / "sdk" / "js" / "lthost.js"
C_OUT = ROOT / "sdk" / "c" / "lthost_aten.h"
DENYLIST = ROOT / "host" / "src" / "engine" / "aten_denylist.rs"

KEYWORDS = set(
    "as break const continue crate else enum extern false fn for if impl in let loop match mod move mut pub "
    "ref return self Self static struct super trait true type unsafe use where while async await dyn abstract "
    "become box do final macro override priv typeof unsized virtual yield try gen union".split()
)


def denied():
    """(names, families, storage-only names) from the host's denylist, as `refusal` reads it."""
    text = DENYLIST.read_text()
    table = text[text.index("const DENIED: ") :]
    table = table[: table.index("];")]
    names = set(re.findall(r'\(\s*"([^"]+)",\s*"', table))
    families = re.findall(r'\(\s*"([^"]+)",\s*Match::(\w+),', text)
    storage = set(re.findall(r'"([^"]+)"', text[text.index("const STORAGE_OVERLOADS") :].split(";")[0]))
    return names, families, storage


def is_denied(name, overload, denylist):
    names, families, storage = denylist
    for pattern, kind in families:
        if (kind == "Prefix" and name.startswith(pattern)) or (kind == "Contains" and pattern in name):
            return True
    if name not in names:
        return False
    return not (name in storage and not overload.startswith("source_Storage"))


def ident(name):
    return f"r#{name}" if name in KEYWORDS else name


class Unsupported(Exception):
    pass


def param(arg):
    """(Rust type, format string making the `Arg` from a value `{}` of the inner type,
    optional?) for a schema argument; None for a generator (left to the host: the run's)."""
    t = arg.type
    opt = isinstance(t, OptionalType)
    inner = t.elem if opt else t
    if isinstance(inner, BaseType):
        b = inner.name
        simple = {
            BaseTy.int: ("i64", "Arg::Int({})"),
            BaseTy.SymInt: ("i64", "Arg::Int({})"),
            BaseTy.float: ("f64", "Arg::Float({})"),
            BaseTy.bool: ("bool", "Arg::Boolean({})"),
            BaseTy.ScalarType: ("Dtype", "Arg::Dtype({})"),
            BaseTy.Layout: ("i64", "Arg::Int({})"),
            BaseTy.MemoryFormat: ("i64", "Arg::Int({})"),
            BaseTy.str: ("&str", "Arg::Str({}.into())"),
            BaseTy.Device: ("&str", "Arg::Str({}.into())"),
            BaseTy.Tensor: ("&Tensor", "Arg::Tensor({})"),
        }
        if b == BaseTy.Generator:
            if not opt:
                raise Unsupported("a required generator")
            return None
        if b == BaseTy.Scalar:
            return ("Option<Scalar>", "{}.arg()", True) if opt else ("impl Into<Scalar>", "{}.into().arg()", False)
        if b in simple:
            ty, make = simple[b]
            return (f"Option<{ty}>" if opt else ty), make, opt
        raise Unsupported(str(b))
    if isinstance(inner, ListType):
        e = inner.elem
        if isinstance(e, OptionalType) and e.elem == BaseType(BaseTy.Tensor):
            if opt:
                raise Unsupported("an optional list of optional tensors")
            return "&[Option<&Tensor>]", "Arg::Tensors({}.to_vec())", False
        if not isinstance(e, BaseType):
            raise Unsupported(str(inner))
        lists = {
            BaseTy.int: ("&[i64]", "Arg::Ints({}.to_vec())"),
            BaseTy.SymInt: ("&[i64]", "Arg::Ints({}.to_vec())"),
            BaseTy.float: ("&[f64]", "Arg::Floats({}.to_vec())"),
            BaseTy.bool: ("&[bool]", "Arg::Bools({}.to_vec())"),
            BaseTy.Tensor: ("&[&Tensor]", "Arg::Tensors({}.iter().map(|t| Some(*t)).collect())"),
        }
        if e.name not in lists:
            raise Unsupported(str(inner))
        ty, make = lists[e.name]
        return (f"Option<{ty}>" if opt else ty), make, opt
    raise Unsupported(str(t))


def arg_name(a):
    return "self_" if a.name == "self" else ident(a.name)


def make_arg(a, p):
    """The expression giving argument `a`'s `Arg`."""
    if p is None:
        return "Arg::None"
    ty, make, opt = p
    n = arg_name(a)
    if opt:
        return f"{n}.map_or(Arg::None, |v| {make.format('v')})"
    return make.format(n)


def returns(rets):
    """(Rust type, expression taking it from `r: Results`)."""
    if not rets:
        return "()", "Ok(())"
    kinds = []
    for r in rets:
        t = r.type
        if t == BaseType(BaseTy.Tensor):
            kinds.append(("Tensor", "r.tensor()?"))
        elif isinstance(t, ListType) and t.elem == BaseType(BaseTy.Tensor):
            kinds.append(("Vec<Tensor>", "r.tensors()?"))
        elif t in (BaseType(BaseTy.int), BaseType(BaseTy.SymInt)):
            kinds.append(("i64", "r.int()?"))
        elif t == BaseType(BaseTy.float):
            kinds.append(("f64", "r.float()?"))
        elif t == BaseType(BaseTy.bool):
            kinds.append(("bool", "r.boolean()?"))
        elif t == BaseType(BaseTy.Scalar):
            kinds.append(("f64", "r.float()?"))
        elif t == BaseType(BaseTy.ScalarType):
            kinds.append(("i64", "r.int()?"))
        elif isinstance(t, ListType) and t.elem in (BaseType(BaseTy.int), BaseType(BaseTy.SymInt)):
            kinds.append(("Vec<i64>", "r.ints()?"))
        else:
            raise Unsupported(f"returns {t}")
    if len(kinds) == 1:
        return kinds[0][0], f"Ok({kinds[0][1]})"
    return "(" + ", ".join(k[0] for k in kinds) + ")", "Ok((" + ", ".join(k[1] for k in kinds) + "))"


def snake(s):
    return s.lower()


def collect():
    denylist = denied()
    by_name = {}
    skipped = {}
    for s in torch._C._jit_get_all_schemas():
        if not s.name.startswith("aten::"):
            continue
        base = s.name[len("aten::") :]
        try:
            torch._C._dispatch_find_schema_or_throw(s.name, s.overload_name)
        except RuntimeError:
            continue  # the TorchScript interpreter's own, not a dispatcher operator
        if is_denied(base, s.overload_name, denylist):
            continue
        # torch prints list defaults as `[-1, -1]`; torchgen reads them as written in
        # native_functions.yaml, without spaces.
        text = re.sub(r"\[([^\]]*)\]", lambda m: "[" + m.group(1).replace(" ", "") + "]", str(s))
        try:
            f = FunctionSchema.parse(text)
        except (AssertionError, RuntimeError):
            skipped["unparsed"] = skipped.get("unparsed", 0) + 1
            continue
        if f.is_out_fn() or s.overload_name == "out" or s.overload_name.endswith("_out"):
            continue
        try:
            args = [(a, param(a)) for a in f.arguments.flat_all]
            ret = returns(f.returns)
        except Unsupported as e:
            skipped[str(e)] = skipped.get(str(e), 0) + 1
            continue
        by_name.setdefault(base, []).append((s.overload_name, str(s), f, args, ret))
    return by_name, skipped


def rust_names(base, overloads):
    """Rust name per overload."""
    names = [o[0] for o in overloads]
    if "" in names:
        primary = ""
    elif len(names) == 1:
        primary = names[0]
    elif "Tensor" in names:
        primary = "Tensor"
    elif "int" in names:
        primary = "int"
    else:
        primary = None
    inplace = base.endswith("_") and not base.endswith("__")
    stem = base[:-1] if inplace else base
    out = {}
    for o in names:
        n = stem if o == primary else f"{stem}_{snake(o)}"
        out[o] = n + ("_" if inplace else "")
    return out


def generate():
    by_name, skipped = collect()
    lines = [
        "// @generated by tools/gen_ops.py from torch "
        + torch.__version__.split("+")[0]
        + "'s operator schemas; do not edit.",
        "//! Every ATen operator a plugin may call, typed: `f_<name>` returns torch's error as a",
        "//! value, `<name>` panics with it. See `tools/gen_ops.py` for the naming rules.",
        "",
        "#![allow(clippy::too_many_arguments, clippy::type_complexity, non_snake_case, unused_mut, unused_variables)]",
        "",
        "use crate::aten::{apply_tensor_flat, call, call_tensor, call_tensor_flat, check, Results, Scalar, TorchError};",
        "use crate::bindings::lt::plugin::aten::Arg;",
        "use crate::{Dtype, Tensor};",
        "",
    ]
    methods = []
    count = 0
    seen = set()
    bound = []  # (index, name, qualified, schema, FunctionSchema) for the other SDKs
    for base in sorted(by_name):
        overloads = by_name[base]
        for o, text, f, args, (rty, rexpr) in overloads:
            name = rust_names(base, overloads)[o]
            if name in seen:
                continue
            seen.add(name)
            qual = f"aten::{base}" + (f".{o}" if o else "")
            params = [(a, p) for a, p in args if p is not None]
            fn_params = ", ".join(f"{arg_name(a)}: {p[0]}" for a, p in params)
            fn_args = ", ".join(arg_name(a) for a, p in params)
            kw_only = {a.name for a in f.arguments.flat_kwarg_only}
            positional = ", ".join(make_arg(a, p) for a, p in args if a.name not in kw_only)
            # Keyword-only arguments go by name; an optional one left as None is left out (its
            # default), so that a generator-drawing op still draws from the host's generator.
            kw_lines = []
            for a, p in args:
                if a.name not in kw_only or p is None:
                    continue
                if p[2] and a.default in (None, "None"):
                    kw_lines.append(f'    if let Some(v) = {arg_name(a)} {{ kw.push(("{a.name}", {p[1].format("v")})); }}')
                else:
                    kw_lines.append(f'    kw.push(("{a.name}", {make_arg(a, p)}));')
            # Up to four arguments and one tensor back: every argument in the schema's order,
            # flat (what the list form leaves out is None, its default, in both forms; a
            # generator is None, the run's or a worker's).
            flat = rty == "Tensor" and len(args) <= 4
            in_order = ", ".join(make_arg(a, p) for a, p in args)
            # The trailing arguments whose default is None: left out when None, so that an
            # operator given only tensors takes the host's tensors-only call.
            keep = len(args)
            while keep > 0 and (args[keep - 1][1] is None or args[keep - 1][1][2]) and args[keep - 1][0].default == "None":
                keep -= 1
            bound.append((count, name, qual, text, f))
            rid = ident(name)
            fid = f"f_{name}"
            doc = text.replace("\\", "\\\\")
            body = [f"    let mut kw: Vec<(&str, Arg)> = Vec::new();"] + kw_lines if kw_lines and not flat else []
            kwarg = "kw" if kw_lines else "Vec::new()"
            lines += [
                f"/// `{doc}`",
                "#[inline]",
                f"pub fn {fid}({fn_params}) -> Result<{rty}, TorchError> {{",
                *body,
                *(
                    [f'    call_tensor_flat({count}, "{qual}", {keep}, [{in_order}])']
                    if flat
                    else [f'    call_tensor({count}, "{qual}", &[{positional}], {kwarg})']
                    if rty == "Tensor"
                    else [f'    let mut r: Results = call({count}, "{qual}", &[{positional}], {kwarg})?;', f"    {rexpr}"]
                ),
                "}",
                f"/// `{doc}`; panics with torch's message.",
                "#[inline]",
                f"pub fn {rid}({fn_params}) -> {rty} {{",
                (f'    apply_tensor_flat({count}, "{qual}", {keep}, [{in_order}])' if flat else f"    check({fid}({fn_args}))"),
                "}",
            ]
            if params and params[0][0].name == "self" and params[0][1][0] == "&Tensor":
                mp = ", ".join(f"{ident(a.name)}: {p[0]}" for a, p in params[1:])
                ma = ", ".join(["self"] + [ident(a.name) for a, p in params[1:]])
                sep = ", " if mp else ""
                methods.append((rid, fid, mp, ma, rty, sep, doc))
            count += 1
    lines += [
        "",
        "/// How many operators the table above has (the indices the calls pass).",
        f"pub(crate) const OP_COUNT: usize = {count};",
        "",
        "/// The operators whose first argument is `Tensor self`, as methods (torch's",
        "/// `x.masked_fill(...)`). Methods the `Tensor` type has itself take precedence; these",
        "/// stay reachable as `AtenOps::name(&x, ...)` or through the free functions.",
        "pub trait AtenOps {",
    ]
    for rid, fid, mp, ma, rty, sep, doc in methods:
        lines += [f"    /// `{doc}`", f"    fn {fid}(&self{sep}{mp}) -> Result<{rty}, TorchError>;"]
        lines += [f"    /// `{doc}`; panics with torch's message.", f"    fn {rid}(&self{sep}{mp}) -> {rty};"]
    lines += ["}", "", "impl AtenOps for Tensor {"]
    for rid, fid, mp, ma, rty, sep, doc in methods:
        lines += [
            "    #[inline]",
            f"    fn {fid}(&self{sep}{mp}) -> Result<{rty}, TorchError> {{",
            f"        crate::aten_ops::{fid}({ma})",
            "    }",
            "    #[inline]",
            f"    fn {rid}(&self{sep}{mp}) -> {rty} {{",
            f"        crate::aten_ops::{rid}({ma})",
            "    }",
        ]
    lines += ["}", "", f"/// Operators bound here (the size of the handle cache).", f"pub const COUNT: usize = {count};", ""]
    return "\n".join(lines), count, len(methods), skipped, bound


def with_js_table(table):
    """sdk/js/lthost.js with its generated block replaced by `table`."""
    text = JS_SDK.read_text()
    a = text.index(gen_ops_sdks.JS_BEGIN)
    b = text.index(gen_ops_sdks.JS_END) + len(gen_ops_sdks.JS_END)
    return text[:a] + table + text[b:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="fail if a committed file differs")
    a = ap.parse_args()
    text, count, methods, skipped, bound = generate()
    version = torch.__version__.split("+")[0]
    c_text, c_count = gen_ops_sdks.c_header(bound, version)
    files = {
        OUT: text,
        PY_OUT: gen_ops_sdks.python(bound, version),
        JS_SDK: with_js_table(gen_ops_sdks.js(bound, version)),
        C_OUT: c_text,
        TORCH_OUT: gen_ops_sdks.torch_table(bound, version, set(dir(torch.Tensor)), set(dir(torch))),
    }
    if a.check:
        stale = [str(p.relative_to(ROOT)) for p, t in files.items() if p.read_text() != t]
        if stale:
            sys.exit(f"stale: {', '.join(stale)}: run `python tools/gen_ops.py`")
        return
    for p, t in files.items():
        if not p.exists() or p.read_text() != t:
            p.write_text(t)
    print(f"gen_ops: {count} operators ({methods} also methods; {c_count} in C) -> Rust, Python, JS, C; skipped: {sum(skipped.values())} " + str(dict(sorted(skipped.items(), key=lambda kv: -kv[1])[:6])))


if __name__ == "__main__":
    main()
