"""lthost's Python layer under the `torch` package: `lthost.aten` calls any allowed ATen
operator by name (`aten.call("aten::masked_fill.Scalar", x, mask, 0.0)`) or through its
generated, typed function (`aten.masked_fill_scalar(x, mask, 0)`), with grad-mode scopes.

Plugins are written as plain Lightning files (`import torch`, `import lightning as L`) and
built with `lthost build model.py`; see the README, "Plugins in Python, JavaScript and C"."""

from . import aten

__all__ = ["aten"]
