"""torch.nn.Parameter and Buffer."""

from .. import _core
from .._tensor import Tensor


class Parameter(Tensor):
    """A tensor a Module registers as a parameter: a leaf sharing `data`'s storage, with
    `requires_grad`. The host learns it by its path when the LightningModule is built."""

    __slots__ = ()

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            from .. import empty

            data = empty(0)
        p = object.__new__(cls)
        p._h = _core.direct("aten::detach", _core.T(data))._h
        if requires_grad:
            p.requires_grad_(True)
        return p

    def __init__(self, data=None, requires_grad=True):
        pass

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Buffer(Tensor):
    """torch.nn.Buffer: marks a tensor to be registered as a buffer by Module.__setattr__."""

    __slots__ = ()

    def __new__(cls, data, persistent=True):
        b = object.__new__(cls)
        b._h = data._h
        b.__dict__["persistent"] = persistent
        return b

    def __init__(self, data, persistent=True):
        pass
