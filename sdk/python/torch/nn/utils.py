"""torch.nn.utils: gradient clipping as torch computes it (total norm over every gradient,
one scale for all)."""

from .. import _core, no_grad, stack


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    from .. import Tensor

    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return _core.call("zeros", ([],), {})
    with no_grad():
        norms = [_core.call("linalg_vector_norm", (g, float(norm_type)), {}) for g in grads]
        total = _core.call("linalg_vector_norm", (stack(norms), float(norm_type)), {})
        if error_if_nonfinite and not bool(total.isfinite().item()):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite")
        coef = (total + 1e-6).reciprocal() * max_norm
        coef = coef.clamp(max=1.0)
        for g in grads:
            g.mul_(coef)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    from .. import Tensor

    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    with no_grad():
        for p in params:
            if p.grad is not None:
                p.grad.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters):
    from .. import cat

    return cat([p.view(-1) for p in parameters])
