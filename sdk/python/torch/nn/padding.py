"""torch.nn's padding layers: constant (zero), reflection, replication and circular, in 1, 2
and 3 dimensions, over F.pad."""

from . import functional as F
from .module import Module


def _padding(padding, n):
    return [padding] * (2 * n) if isinstance(padding, int) else list(padding)


def _pad_layer(name, n, mode, has_value):
    def __init__(self, padding, value=None):
        Module.__init__(self)
        self.padding = tuple(_padding(padding, n))
        if has_value:
            if value is None:
                raise TypeError(f"{name}.__init__() missing 1 required positional argument: 'value'")
            self.value = value
        elif value is not None:
            raise TypeError(f"{name}.__init__() takes 2 positional arguments but 3 were given")
        elif name.startswith("ZeroPad"):
            self.value = 0.0

    def forward(self, input):
        if mode == "constant":
            return F.pad(input, list(self.padding), "constant", self.value)
        return F.pad(input, list(self.padding), mode)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if mode == "constant" and not name.startswith("ZeroPad") else "")

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr, "__module__": __name__})


ZeroPad1d = _pad_layer("ZeroPad1d", 1, "constant", False)
ZeroPad2d = _pad_layer("ZeroPad2d", 2, "constant", False)
ZeroPad3d = _pad_layer("ZeroPad3d", 3, "constant", False)
ConstantPad1d = _pad_layer("ConstantPad1d", 1, "constant", True)
ConstantPad2d = _pad_layer("ConstantPad2d", 2, "constant", True)
ConstantPad3d = _pad_layer("ConstantPad3d", 3, "constant", True)
ReflectionPad1d = _pad_layer("ReflectionPad1d", 1, "reflect", False)
ReflectionPad2d = _pad_layer("ReflectionPad2d", 2, "reflect", False)
ReflectionPad3d = _pad_layer("ReflectionPad3d", 3, "reflect", False)
ReplicationPad1d = _pad_layer("ReplicationPad1d", 1, "replicate", False)
ReplicationPad2d = _pad_layer("ReplicationPad2d", 2, "replicate", False)
ReplicationPad3d = _pad_layer("ReplicationPad3d", 3, "replicate", False)
CircularPad1d = _pad_layer("CircularPad1d", 1, "circular", False)
CircularPad2d = _pad_layer("CircularPad2d", 2, "circular", False)
CircularPad3d = _pad_layer("CircularPad3d", 3, "circular", False)

__all__ = [n for n in dir() if n.endswith(("Pad1d", "Pad2d", "Pad3d"))]
