"""torchmetrics' AUROC (area under the ROC curve) with torchmetrics 1.9's exact (unbinned,
`thresholds=None`) computation: the scores and targets of every update kept (lists
concatenated at `compute`), probabilities taken as they are and anything outside [0, 1] as
logits (sigmoid; softmax over classes), the curve at each distinct score (descending sort,
cumulative true/false positives), its area by the trapezoidal rule. Binary (with `max_fpr`'s
McClish-corrected partial area), multiclass one-vs-rest and multilabel per label, averaged
`macro` (classes whose area is NaN left out), `weighted` (by their positives), `none`, and
multilabel `micro` (all labels as one binary problem). With `validate_args` (the default), a
multiclass or multilabel update's tensors are checked as torchmetrics 1.9 checks them, with its
messages: float scores, integer targets, matching shapes, multilabel targets in {0, 1} (or
`ignore_index`), no more distinct multiclass targets than classes. BinaryAUROC checks its
arguments but not its tensors, as torchmetrics 1.9's (it hands its parent `validate_args=False`)."""

import torch

from .classification import _safe_divide
from .metric import Metric


def _probabilities(preds, normalize):
    if bool(((preds >= 0) & (preds <= 1)).all()):
        return preds
    return preds.sigmoid() if normalize == "sigmoid" else preds.softmax(1)


def _check_binary(preds, target, ignore_index):
    """torchmetrics' binary curve input checks (which its multilabel AUROC runs)."""
    if preds.shape != target.shape:
        raise RuntimeError(f"Predictions and targets are expected to have the same shape, but got {preds.shape} and {target.shape}.")
    if target.is_floating_point():
        raise ValueError(f"Expected argument `target` to be an int or long tensor with ground truth labels but got tensor with dtype {target.dtype}")
    if not preds.is_floating_point():
        raise ValueError(f"Expected argument `preds` to be an floating tensor with probability/logit scores, but got tensor with dtype {preds.dtype}")
    unique = torch.unique(target)
    wrong = (unique != 0) & (unique != 1)
    if ignore_index is not None:
        wrong = wrong & (unique != ignore_index)
    if bool(wrong.any()):
        expected = [0, 1] if ignore_index is None else [ignore_index]
        raise RuntimeError(f"Detected the following values in `target`: {unique} but expected only the following values {expected}.")


def _check_multiclass(preds, target, num_classes, ignore_index):
    """torchmetrics' multiclass curve input checks."""
    if preds.ndim != target.ndim + 1:
        raise ValueError(f"Expected `preds` to have one more dimension than `target` but got {preds.ndim} and {target.ndim}")
    if target.is_floating_point():
        raise ValueError(f"Expected argument `target` to be an int or long tensor, but got tensor with dtype {target.dtype}")
    if not preds.is_floating_point():
        raise ValueError(f"Expected `preds` to be a float tensor, but got {preds.dtype}")
    if preds.shape[1] != num_classes:
        raise ValueError(f"Expected `preds.shape[1]` to be equal to the number of classes but got {preds.shape[1]} and {num_classes}.")
    if preds.shape[0] != target.shape[0] or preds.shape[2:] != target.shape[1:]:
        raise ValueError(f"Expected the shape of `preds` should be (N, C, ...) and the shape of `target` should be (N, ...) but got {preds.shape} and {target.shape}")
    found = len(torch.unique(target))
    allowed = num_classes if ignore_index is None else num_classes + 1
    if found > allowed:
        raise RuntimeError(f"Detected more unique values in `target` than `num_classes`. Expected only {allowed} but found {found} in `target`.")


def _without(preds, target, ignore_index):
    """The entries whose target is not `ignore_index`."""
    if ignore_index is None:
        return preds, target
    kept = target != ignore_index
    return preds[kept], target[kept]


def _roc(preds, target, pos_label=1):
    """(fpr, tpr) at each distinct score, from (0, 0)."""
    order = torch.argsort(preds, descending=True)
    preds, target = preds[order], target[order]
    distinct = torch.where(preds[1:] - preds[:-1])[0]
    ends = torch.cat([distinct, torch.tensor([target.shape[0] - 1], dtype=distinct.dtype)])
    tps = torch.cumsum((target == pos_label).long() * 1.0, dim=0)[ends]
    fps = 1 + ends - tps
    tps = torch.cat([torch.zeros(1, dtype=tps.dtype), tps])
    fps = torch.cat([torch.zeros(1, dtype=fps.dtype), fps])
    # No negatives (positives): a zero rate, in the scores' dtype (torchmetrics' zeros_like of
    # the thresholds).
    fpr = fps / fps[-1] if fps[-1] > 0 else torch.zeros(fps.shape, dtype=preds.dtype)
    tpr = tps / tps[-1] if tps[-1] > 0 else torch.zeros(tps.shape, dtype=preds.dtype)
    return fpr, tpr


def _area(preds, target, pos_label=1, max_fpr=None):
    fpr, tpr = _roc(preds, target, pos_label)
    if max_fpr is None or max_fpr == 1 or fpr.sum() == 0 or tpr.sum() == 0:
        return torch.trapz(tpr, fpr)
    area = torch.tensor(float(max_fpr))
    stop = int(torch.bucketize(area, fpr, out_int32=True, right=True))
    weight = (area - fpr[stop - 1]) / (fpr[stop] - fpr[stop - 1])
    tpr = torch.cat([tpr[:stop], torch.lerp(tpr[stop - 1], tpr[stop], weight).view(1)])
    fpr = torch.cat([fpr[:stop], area.view(1)])
    partial = torch.trapz(tpr, fpr)
    low = 0.5 * area**2
    return 0.5 * (1 + (partial - low) / (area - low))


def _reduce(areas, average, weights):
    if average in ("none", None):
        return areas
    kept = ~torch.isnan(areas)
    if average == "macro":
        return areas[kept].mean()
    weights = _safe_divide(weights[kept], weights[kept].sum())
    return (areas[kept] * weights).sum()


def _checked(name, n, average, averages):
    """torchmetrics' argument checks of a multiclass/multilabel AUROC: (n, average)."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"Expected argument `{name}` to be an integer larger than 1, but got {n}")
    if average not in averages:
        raise ValueError(f"Expected argument `average` to be one of {averages}, but got {average}")
    return n, average


class _Curve(Metric):
    is_differentiable = False
    higher_is_better = True

    def __init__(self, thresholds=None, ignore_index=None, validate_args=True, **kwargs):
        super().__init__(**kwargs)
        if thresholds is not None:
            raise NotImplementedError("AUROC(thresholds=...) (the binned curve): lthost's torchmetrics computes the exact one (thresholds=None)")
        self.thresholds, self.ignore_index, self.validate_args = None, ignore_index, validate_args
        self.add_state("preds", [], dist_reduce_fx="cat")
        self.add_state("target", [], dist_reduce_fx="cat")

    def _keep(self, preds, target):
        self.preds.append(preds)
        self.target.append(target)

    def _state(self):
        if not self.preds:
            raise ValueError("No samples to concatenate")
        return torch.cat(self.preds), torch.cat(self.target)


class BinaryAUROC(_Curve):
    def __init__(self, max_fpr=None, thresholds=None, ignore_index=None, validate_args=True, **kwargs):
        super().__init__(thresholds, ignore_index, validate_args, **kwargs)
        if max_fpr is not None and not (isinstance(max_fpr, float) and 0 < max_fpr <= 1):
            raise ValueError(f"Arguments `max_fpr` should be a float in range (0, 1], but got: {max_fpr}")
        self.max_fpr = max_fpr

    def update(self, preds, target):
        preds, target = preds.flatten(), target.flatten()
        preds, target = _without(preds, target, self.ignore_index)
        self._keep(_probabilities(preds, "sigmoid"), target)

    def compute(self):
        preds, target = self._state()
        return _area(preds, target, 1, self.max_fpr)


class MulticlassAUROC(_Curve):
    def __init__(self, num_classes, average="macro", thresholds=None, ignore_index=None, validate_args=True, **kwargs):
        super().__init__(thresholds, ignore_index, validate_args, **kwargs)
        self.num_classes, self.average = _checked("num_classes", num_classes, average, ("macro", "weighted", "none", None))

    def update(self, preds, target):
        if self.validate_args:
            _check_multiclass(preds, target, self.num_classes, self.ignore_index)
        preds = preds.transpose(0, 1).reshape(self.num_classes, -1).T
        target = target.flatten()
        preds, target = _without(preds, target, self.ignore_index)
        self._keep(_probabilities(preds, "softmax"), target)

    def compute(self):
        preds, target = self._state()
        areas = torch.stack([_area(preds[:, c], target, c) for c in range(self.num_classes)])
        return _reduce(areas, self.average, torch.bincount(target, minlength=self.num_classes).float())


class MultilabelAUROC(_Curve):
    def __init__(self, num_labels, average="macro", thresholds=None, ignore_index=None, validate_args=True, **kwargs):
        super().__init__(thresholds, ignore_index, validate_args, **kwargs)
        self.num_labels, self.average = _checked("num_labels", num_labels, average, ("micro", "macro", "weighted", "none", None))

    def update(self, preds, target):
        if self.validate_args:
            _check_binary(preds, target, self.ignore_index)
            if preds.shape[1] != self.num_labels:
                raise ValueError(f"Expected both `target.shape[1]` and `preds.shape[1]` to be equal to the number of labels but got {preds.shape[1]} and expected {self.num_labels}")
        preds = preds.transpose(0, 1).reshape(self.num_labels, -1).T
        target = target.transpose(0, 1).reshape(self.num_labels, -1).T
        self._keep(_probabilities(preds, "sigmoid"), target)

    def compute(self):
        preds, target = self._state()
        ignore = self.ignore_index
        if self.average == "micro":
            return _area(*_without(preds.flatten(), target.flatten(), ignore))
        areas = []
        for label in range(self.num_labels):
            areas.append(_area(*_without(preds[:, label], target[:, label], ignore)))
        return _reduce(torch.stack(areas), self.average, (target == 1).sum(0).float())


class AUROC:
    """torchmetrics' AUROC(task=...)."""

    def __new__(cls, task, thresholds=None, num_classes=None, num_labels=None, average="macro", max_fpr=None, ignore_index=None, validate_args=True, **kwargs):
        if task == "binary":
            return BinaryAUROC(max_fpr, thresholds, ignore_index, validate_args, **kwargs)
        if task == "multiclass":
            if not isinstance(num_classes, int):
                raise ValueError(f"`num_classes` is expected to be `int` but `{type(num_classes).__name__} was passed.`")
            return MulticlassAUROC(num_classes, average, thresholds, ignore_index, validate_args, **kwargs)
        if task == "multilabel":
            if not isinstance(num_labels, int):
                raise ValueError(f"`num_labels` is expected to be `int` but `{type(num_labels).__name__} was passed.`")
            return MultilabelAUROC(num_labels, average, thresholds, ignore_index, validate_args, **kwargs)
        raise ValueError(f"Invalid Classification: expected one of ('binary', 'multiclass', 'multilabel') but got {task}")
