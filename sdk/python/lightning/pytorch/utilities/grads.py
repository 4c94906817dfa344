"""`lightning.pytorch.utilities.grad_norm`: the norm of each parameter's gradient and of all of
them together, as Lightning's docs log them in `on_before_optimizer_step`."""

import torch


def grad_norm(module, norm_type, group_separator="/"):
    """{"grad_<p>_norm/<name>": the p-norm of each gradient the module's parameters hold,
    "grad_<p>_norm_total": the p-norm of them all as one vector}; `norm_type` may be "inf"."""
    norm_type = float(norm_type)
    if norm_type <= 0:
        raise ValueError(f"`norm_type` must be a positive number or 'inf' (infinity norm). Got {norm_type}")
    norms = {
        f"grad_{norm_type}_norm{group_separator}{name}": p.grad.data.norm(norm_type)
        for name, p in module.named_parameters()
        if p.grad is not None
    }
    if norms:
        # The norm of the norms: the whole gradient's, as if its parts were one vector.
        norms[f"grad_{norm_type}_norm_total"] = torch.stack(list(norms.values())).norm(norm_type)
    return norms
