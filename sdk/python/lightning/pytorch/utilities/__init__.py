"""`lightning.pytorch.utilities` inside an lthost plugin: what Lightning files import from it —
`grad_norm`, the `rank_zero_*` helpers, `AttributeDict`, and the type aliases of `types` — with
Lightning 2.6.6's behaviour. Its names that belong to Lightning's own trainer (`CombinedLoader`,
`measure_flops`, ...) are errors that say so."""

import warnings

from .._hparams import AttributeDict  # noqa: F401
from . import rank_zero, types  # noqa: F401
from .grads import grad_norm  # noqa: F401
from .rank_zero import rank_zero_debug, rank_zero_deprecation, rank_zero_info, rank_zero_only, rank_zero_warn  # noqa: F401

_NOT_HERE = ("CombinedLoader", "measure_flops", "is_shared_filesystem", "suggested_max_num_workers", "find_shared_parameters",
             "set_shared_parameters", "is_picklable", "move_data_to_device", "LightningEnum", "GradClipAlgorithmType")


def disable_possible_user_warnings(module=""):
    """Lightning's: hides the warnings Lightning itself raises about a user's choices."""
    warnings.filterwarnings("ignore", module="lightning.pytorch" + (f".{module}" if module else ""))


def __getattr__(name):
    if name in _NOT_HERE:
        raise NotImplementedError(f"lightning.pytorch.utilities.{name}: not in lthost's SDK (lthost's trainer does this "
                                  f"part itself)")
    raise AttributeError(f"module 'lightning.pytorch.utilities' has no attribute '{name}'")
