"""`lightning.pytorch.utilities.rank_zero`: run a function, or say something, on the process of
global rank 0 only. The rank is the run's (`self.global_rank`), unless the file sets
`rank_zero_only.rank` itself; before a run (the file's import at build) it is 0."""

import functools
import logging
import warnings

import torch
from wit_world.imports import trainer as _trainer

log = logging.getLogger("lightning.pytorch.utilities.rank_zero")


def _rank():
    rank = getattr(rank_zero_only, "rank", None)
    if rank is not None:
        return rank
    return _trainer.ranks().global_rank if torch._core.RUNNING[0] else 0


def rank_zero_only(fn, default=None):
    """`fn` that runs on global rank 0 and returns `default` elsewhere."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if _rank() == 0:
            return fn(*args, **kwargs)
        return default

    return wrapped


@rank_zero_only
def rank_zero_debug(*args, stacklevel=4, **kwargs):
    log.debug(*args, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_info(*args, stacklevel=4, **kwargs):
    log.info(*args, stacklevel=stacklevel, **kwargs)


@rank_zero_only
def rank_zero_warn(message, stacklevel=4, **kwargs):
    warnings.warn(message, stacklevel=stacklevel, **kwargs)


def rank_zero_deprecation(message, stacklevel=5, **kwargs):
    rank_zero_warn(message, stacklevel=stacklevel, category=kwargs.pop("category", DeprecationWarning), **kwargs)
