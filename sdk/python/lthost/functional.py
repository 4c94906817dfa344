"""torch.nn.functional: losses and activations, run in the host."""

from wit_world.imports import tensor as _t
from wit_world.imports.types import Reduction

_R = {"mean": Reduction.MEAN, "sum": Reduction.SUM, "none": Reduction.NONE}


def cross_entropy(input, target, reduction="mean", label_smoothing=0.0):
    return _t.cross_entropy(input, target, _R[reduction], label_smoothing)


def nll_loss(input, target, reduction="mean"):
    return _t.nll_loss(input, target, _R[reduction])


def mse_loss(input, target, reduction="mean"):
    return _t.mse_loss(input, target, _R[reduction])


def l1_loss(input, target, reduction="mean"):
    return _t.l1_loss(input, target, _R[reduction])


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    return _t.binary_cross_entropy_with_logits(input, target, _R[reduction])


def relu(x):
    return x.relu()


def softmax(x, dim):
    return x.softmax(dim)


def log_softmax(x, dim):
    return x.log_softmax(dim)


def dropout(x, p=0.5):
    return x.dropout(p)
