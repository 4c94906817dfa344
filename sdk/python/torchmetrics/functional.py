"""torchmetrics.functional: one batch through the metric classes."""

from . import classification as _c
from . import regression as _r


def _once(metric, *args):
    metric.update(*args)
    return metric.compute()


def accuracy(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro", multidim_average="global", top_k=1, ignore_index=None, validate_args=True):
    return _once(_c.Accuracy(task, threshold, num_classes, num_labels, average, multidim_average, top_k, ignore_index), preds, target)


def f1_score(preds, target, task, threshold=0.5, num_classes=None, num_labels=None, average="micro", multidim_average="global", top_k=1, ignore_index=None, validate_args=True):
    return _once(_c.F1Score(task, threshold, num_classes, num_labels, average, multidim_average, top_k, ignore_index), preds, target)


def mean_squared_error(preds, target, squared=True, num_outputs=1):
    return _once(_r.MeanSquaredError(squared, num_outputs), preds, target)


def mean_absolute_error(preds, target, num_outputs=1):
    return _once(_r.MeanAbsoluteError(num_outputs), preds, target)
