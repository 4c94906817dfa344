"""torch.optim optimizers (run in the host with torch's update rules)."""

from wit_world.exports import lightning_module as _lm


def _opt(algorithm):
    return _lm.Optimizer(algorithm, [])


def SGD(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    return _opt(_lm.Algorithm_Sgd(_lm.Sgd(lr, momentum, dampening, weight_decay, nesterov)))


def Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
    return _opt(_lm.Algorithm_Adam(_lm.Adam(lr, tuple(betas), eps, weight_decay, amsgrad)))


def AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    return _opt(_lm.Algorithm_Adamw(_lm.Adam(lr, tuple(betas), eps, weight_decay, amsgrad)))


def optimization(opt):
    """What `configure_optimizers` returned, as the host's record."""
    if isinstance(opt, _lm.Optimization):
        return opt
    opts = list(opt) if isinstance(opt, (list, tuple)) else [opt]
    return _lm.Optimization(opts, [], True)
