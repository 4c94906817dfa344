"""Tensor indexing as torch does it: ints select, slices slice (views), None adds a dim,
`...` skips dims, tensors and lists index (advanced indexing, `aten::index`); writes go
through the same views (`copy_`/`fill_`) or `aten::index_put_`."""

import builtins

from . import _core
from ._core import direct


def _as_index_tensor(i):
    from . import tensor

    return tensor(i)


def _parts(t, index):
    """(the view after basic indexing, [(dim in the view, index tensor)])."""
    if not isinstance(index, tuple):
        index = (index,)
    consumed = 0
    for i in index:
        if i is None or i is Ellipsis:
            continue
        if isinstance(i, _core.Tensor) and i.dtype in (_core.bool_, _core.uint8):
            consumed += i.dim()
        else:
            consumed += 1
    ndim = t.dim()
    if consumed > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    view, dim, advanced = t, 0, []
    for i in index:
        if i is Ellipsis:
            dim += ndim - consumed
            consumed = ndim
        elif i is None:
            view = direct("aten::unsqueeze", _core.T(view), _core.Int(dim))
            dim += 1
        elif isinstance(i, builtins.bool):
            raise IndexError("indexing with a Python bool is not supported")
        elif isinstance(i, builtins.int):
            size = view.shape[dim]
            if i < -size or i >= size:
                raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")
            view = direct("aten::select.int", _core.T(view), _core.Int(dim), _core.Int(i))
        elif isinstance(i, slice):
            step = 1 if i.step is None else i.step
            if step <= 0:
                raise ValueError("step must be greater than zero")
            if not (i.start is None and i.stop is None and step == 1):
                view = direct(
                    "aten::slice.Tensor",
                    _core.T(view),
                    _core.Int(dim),
                    _core.NONE if i.start is None else _core.Int(i.start),
                    _core.NONE if i.stop is None else _core.Int(i.stop),
                    _core.Int(step),
                )
            dim += 1
        elif isinstance(i, (_core.Tensor, list, tuple)):
            it = i if isinstance(i, _core.Tensor) else _as_index_tensor(i)
            advanced.append((dim, it))
            dim += it.dim() if it.dtype in (_core.bool_, _core.uint8) else 1
        else:
            raise IndexError(f"a tensor cannot be indexed by a {type(i).__name__}")
    return view, advanced


def _index_list(advanced):
    last = max(d for d, _ in advanced)
    slots = [None] * (last + 1)
    for d, it in advanced:
        slots[d] = it._h
    return _core._a.Arg_Tensors(slots)


def getitem(t, index):
    view, advanced = _parts(t, index)
    if not advanced:
        return view
    return direct("aten::index.Tensor", _core.T(view), _index_list(advanced))


def setitem(t, index, value):
    view, advanced = _parts(t, index)
    if not advanced:
        if isinstance(value, _core.Tensor):
            direct("aten::copy_", _core.T(view), _core.T(value), _core.B(False))
        else:
            direct("aten::fill_.Scalar", _core.T(view), _core.S(value))
        return
    if not isinstance(value, _core.Tensor):
        from . import full

        value = full([], value, dtype=t.dtype)
    direct("aten::index_put_", _core.T(view), _index_list(advanced), _core.T(value), _core.B(False))
