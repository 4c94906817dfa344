"""torch._dynamo as far as a Lightning file meets it: `torch.compile(module)` gives an
`eval_frame.OptimizedModule` (its checkpoint keys carry `_orig_mod.`, as torch's do), and the
settings files write (`config.*`) are kept, with no effect (lthost runs the model eagerly)."""

from . import config, eval_frame  # noqa: F401


def reset():
    """torch._dynamo.reset(): nothing compiled, nothing to forget."""
