"""torchmetrics' classification metrics on stat scores (true/false positives/negatives), with
torchmetrics 1.9's formats and reductions: binary (probabilities or logits, thresholded) and
multiclass (labels or scores, `top_k=1`, global), averaged `micro`, `macro` (classes never
seen in targets or predictions left out), `weighted` or `none`."""

import torch

from .metric import Metric

_AVERAGES = ("micro", "macro", "weighted", "none", None)


def _safe_divide(num, denom):
    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(num))


class _StatScores(Metric):
    def _stat_states(self, size):
        for s in ("tp", "fp", "tn", "fn"):
            self.add_state(s, torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")


class _BinaryStatScores(_StatScores):
    def __init__(self, threshold=0.5, multidim_average="global", ignore_index=None, validate_args=True, **kwargs):
        super().__init__(**kwargs)
        if multidim_average != "global":
            raise NotImplementedError("torchmetrics multidim_average='samplewise' is not supported by lthost")
        self.threshold, self.ignore_index = threshold, ignore_index
        self._stat_states(())

    def update(self, preds, target):
        if preds.is_floating_point():
            if not bool(((preds >= 0) & (preds <= 1)).all()):
                preds = preds.sigmoid()
            preds = preds > self.threshold
        preds, target = preds.long().flatten(), target.long().flatten()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            preds, target = preds[keep], target[keep]
        self.tp += ((target == preds) & (target == 1)).sum()
        self.fn += ((target != preds) & (target == 1)).sum()
        self.fp += ((target != preds) & (target == 0)).sum()
        self.tn += ((target == preds) & (target == 0)).sum()


class _MulticlassStatScores(_StatScores):
    def __init__(self, num_classes, top_k=1, average="macro", multidim_average="global", ignore_index=None, validate_args=True, **kwargs):
        super().__init__(**kwargs)
        if top_k != 1:
            raise NotImplementedError("torchmetrics top_k > 1 is not supported by lthost")
        if multidim_average != "global":
            raise NotImplementedError("torchmetrics multidim_average='samplewise' is not supported by lthost")
        if average not in _AVERAGES:
            raise ValueError(f"Expected argument `average` to be one of {_AVERAGES}, but got {average}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"Expected argument `num_classes` to be an integer larger than 1, but got {num_classes}")
        self.num_classes, self.average, self.ignore_index = num_classes, average, ignore_index
        self._stat_states(1 if average == "micro" else num_classes)

    def update(self, preds, target):
        if preds.is_floating_point() and preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=1)
        preds, target = preds.flatten().long(), target.flatten().long()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            preds, target = preds[keep], target[keep]
        if self.average == "micro":
            tp = (preds == target).sum()
            miss = (preds != target).sum()
            self.tp += tp
            self.fp += miss
            self.fn += miss
            self.tn += self.num_classes * preds.numel() - (miss + miss + tp)
            return
        c = self.num_classes
        confmat = torch.bincount(target * c + preds, minlength=c * c).reshape(c, c)
        tp = confmat.diag()
        fp = confmat.sum(0) - tp
        fn = confmat.sum(1) - tp
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += confmat.sum() - (fp + fn + tp)

    def _reduce(self, score):
        if self.average in ("none", None):
            return score
        if self.average == "weighted":
            weights = (self.tp + self.fn).float()
        else:
            weights = torch.ones_like(score)
            weights[self.tp + self.fp + self.fn == 0] = 0.0
        return _safe_divide(weights * score, weights.sum(-1, keepdim=True)).sum(-1)


class BinaryAccuracy(_BinaryStatScores):
    higher_is_better = True

    def compute(self):
        return _safe_divide(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn)


class MulticlassAccuracy(_MulticlassStatScores):
    higher_is_better = True

    def compute(self):
        if self.average == "micro":
            return _safe_divide(self.tp.sum(0), (self.tp + self.fn).sum(0))
        return self._reduce(_safe_divide(self.tp, self.tp + self.fn))


def _f_beta(tp, fp, fn, beta=1.0):
    b2 = beta * beta
    return _safe_divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)


class BinaryF1Score(_BinaryStatScores):
    higher_is_better = True

    def compute(self):
        return _f_beta(self.tp, self.fp, self.fn)


class MulticlassF1Score(_MulticlassStatScores):
    higher_is_better = True

    def compute(self):
        if self.average == "micro":
            return _f_beta(self.tp.sum(0), self.fp.sum(0), self.fn.sum(0))
        return self._reduce(_f_beta(self.tp, self.fp, self.fn))


class BinaryPrecision(_BinaryStatScores):
    def compute(self):
        return _safe_divide(self.tp, self.tp + self.fp)


class MulticlassPrecision(_MulticlassStatScores):
    def compute(self):
        if self.average == "micro":
            return _safe_divide(self.tp.sum(0), (self.tp + self.fp).sum(0))
        return self._reduce(_safe_divide(self.tp, self.tp + self.fp))


class BinaryRecall(_BinaryStatScores):
    def compute(self):
        return _safe_divide(self.tp, self.tp + self.fn)


class MulticlassRecall(_MulticlassStatScores):
    def compute(self):
        if self.average == "micro":
            return _safe_divide(self.tp.sum(0), (self.tp + self.fn).sum(0))
        return self._reduce(_safe_divide(self.tp, self.tp + self.fn))


def _task(name, binary, multiclass):
    """torchmetrics' task wrappers (`Accuracy(task="multiclass", ...)`), `micro` by default."""

    class Task:
        def __new__(cls, task, threshold=0.5, num_classes=None, num_labels=None, average="micro", multidim_average="global", top_k=1, ignore_index=None, validate_args=True, **kwargs):
            if task == "binary":
                return binary(threshold, multidim_average, ignore_index, validate_args, **kwargs)
            if task == "multiclass":
                if not isinstance(num_classes, int):
                    raise ValueError(f"`num_classes` is expected to be `int` but `{type(num_classes).__name__} was passed.`")
                return multiclass(num_classes, top_k, average, multidim_average, ignore_index, validate_args, **kwargs)
            if task == "multilabel":
                raise NotImplementedError(f"torchmetrics {name}(task='multilabel') is not supported by lthost")
            raise ValueError(f"Invalid Classification: expected one of ('binary', 'multiclass', 'multilabel') but got {task}")

    Task.__name__ = Task.__qualname__ = name
    return Task


Accuracy = _task("Accuracy", BinaryAccuracy, MulticlassAccuracy)
F1Score = _task("F1Score", BinaryF1Score, MulticlassF1Score)
Precision = _task("Precision", BinaryPrecision, MulticlassPrecision)
Recall = _task("Recall", BinaryRecall, MulticlassRecall)
