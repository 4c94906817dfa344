"""torchmetrics' classification metrics on stat scores (true/false positives/negatives), with
torchmetrics 1.9's formats and reductions: binary (probabilities or logits, thresholded),
multiclass (labels or scores; `top_k > 1` counts a sample right when its target is among its
top k scores, as 1.9 does) and multilabel (probabilities or logits per label, thresholded),
global, averaged `micro`, `macro` (multiclass: classes never seen in targets or predictions
left out), `weighted` or `none`."""

import torch

from .metric import Metric

_AVERAGES = ("micro", "macro", "weighted", "none", None)


def _safe_divide(num, denom):
    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(num))


class _StatScores(Metric):
    def _check(self, multidim_average, average="micro"):
        if multidim_average != "global":
            raise NotImplementedError("torchmetrics multidim_average='samplewise' is not supported by lthost")
        if average not in _AVERAGES:
            raise ValueError(f"Expected argument `average` to be one of {_AVERAGES}, but got {average}")

    def _stat_states(self, size):
        for s in ("tp", "fp", "tn", "fn"):
            self.add_state(s, torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")


class _BinaryStatScores(_StatScores):
    def __init__(self, threshold=0.5, multidim_average="global", ignore_index=None, validate_args=True, **kwargs):
        super().__init__(**kwargs)
        self._check(multidim_average)
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
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"Expected argument `top_k` to be an integer larger than or equal to 1, but got {top_k}")
        self._check(multidim_average, average)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"Expected argument `num_classes` to be an integer larger than 1, but got {num_classes}")
        if top_k > num_classes:
            raise ValueError(f"Expected argument `top_k` to be smaller or equal to `num_classes` but got {top_k} and {num_classes}")
        self.num_classes, self.top_k, self.average, self.ignore_index = num_classes, top_k, average, ignore_index
        self._stat_states(1 if average == "micro" and top_k == 1 else num_classes)

    def update(self, preds, target):
        if self.top_k > 1:
            self._update_top_k(preds, target)
            return
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

    def _update_top_k(self, preds, target):
        """Scores (N, C, ...) against labels (N, ...): one-hot, each sample's target where it is
        among its top k scores, else its top score; an ignored target counts nowhere."""
        if not preds.is_floating_point() or preds.ndim != target.ndim + 1:
            raise ValueError("torchmetrics `top_k > 1` expects floating scores with one more dimension than the target")
        c, ignore = self.num_classes, self.ignore_index
        preds, target = preds.reshape(*preds.shape[:2], -1), target.reshape(target.shape[0], -1)
        inside = ignore is not None and 0 <= ignore <= c - 1
        if ignore is not None and not inside:
            preds, target = preds.clone(), target.clone()
            idx = target == ignore
            target[idx] = c
            preds[idx.unsqueeze(1).repeat(1, c, 1)] = c
        top = preds.topk(k=self.top_k, dim=1).indices
        hit = (top == target.unsqueeze(1)).any(dim=1)
        chosen = torch.where(hit, target, top[:, 0])
        width = c + 1 if ignore is not None and not inside else c
        preds_oh = torch.zeros(*chosen.shape, c, dtype=torch.int32).scatter_(-1, chosen.unsqueeze(-1), 1)
        target_oh = torch.nn.functional.one_hot(target.long(), width)
        if ignore is not None:
            if inside:
                target_oh[target == ignore, :] = -1
            else:
                target_oh = target_oh[..., :-1]
                target_oh[target == c, :] = -1
        self.tp += ((target_oh == preds_oh) & (target_oh == 1)).sum([0, 1])
        self.fn += ((target_oh != preds_oh) & (target_oh == 1)).sum([0, 1])
        self.fp += ((target_oh != preds_oh) & (target_oh == 0)).sum([0, 1])
        self.tn += ((target_oh == preds_oh) & (target_oh == 0)).sum([0, 1])

    def _reduce(self, score, top_k=1):
        if self.average in ("none", None):
            return score
        if self.average == "weighted":
            weights = (self.tp + self.fn).float()
        else:
            weights = torch.ones_like(score)
            weights[self.tp + self.fp + self.fn == 0 if top_k == 1 else self.tp + self.fn == 0] = 0.0
        return _safe_divide(weights * score, weights.sum(-1, keepdim=True)).sum(-1)


class _MultilabelStatScores(_StatScores):
    top_k = 1

    def __init__(self, num_labels, threshold=0.5, average="macro", multidim_average="global", ignore_index=None, validate_args=True, **kwargs):
        super().__init__(**kwargs)
        self._check(multidim_average, average)
        if not isinstance(num_labels, int) or num_labels < 2:
            raise ValueError(f"Expected argument `num_labels` to be an integer larger than 1, but got {num_labels}")
        self.num_labels, self.threshold, self.average, self.ignore_index = num_labels, threshold, average, ignore_index
        self._stat_states(num_labels)

    def update(self, preds, target):
        if preds.is_floating_point():
            if not bool(((preds >= 0) & (preds <= 1)).all()):
                preds = preds.sigmoid()
            preds = preds > self.threshold
        preds, target = preds.reshape(*preds.shape[:2], -1), target.reshape(*target.shape[:2], -1)
        if self.ignore_index is not None:
            idx = target == self.ignore_index
            target = target.clone()
            target[idx] = -1
        preds, target = preds.long(), target.long()
        self.tp += ((target == preds) & (target == 1)).sum([0, -1]).squeeze()
        self.fn += ((target != preds) & (target == 1)).sum([0, -1]).squeeze()
        self.fp += ((target != preds) & (target == 0)).sum([0, -1]).squeeze()
        self.tn += ((target == preds) & (target == 0)).sum([0, -1]).squeeze()

    def _reduce(self, score, top_k=1):
        if self.average in ("none", None):
            return score
        weights = (self.tp + self.fn).float() if self.average == "weighted" else torch.ones_like(score)
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
        return self._reduce(_safe_divide(self.tp, self.tp + self.fn), self.top_k)


class MultilabelAccuracy(_MultilabelStatScores):
    higher_is_better = True

    def compute(self):
        tp, fp, tn, fn = self.tp, self.fp, self.tn, self.fn
        if self.average == "micro":
            tp, fp, tn, fn = tp.sum(0), fp.sum(0), tn.sum(0), fn.sum(0)
            return _safe_divide(tp + tn, tp + tn + fp + fn)
        return self._reduce(_safe_divide(tp + tn, tp + tn + fp + fn))


def _f_beta(tp, fp, fn, beta=1.0):
    b2 = beta * beta
    return _safe_divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)


class BinaryF1Score(_BinaryStatScores):
    higher_is_better = True

    def compute(self):
        return _f_beta(self.tp, self.fp, self.fn)


class _F1(_StatScores):
    """F1 over per-class or per-label counts (its macro weights as torchmetrics' F-beta
    reduction takes them: top_k plays no part)."""

    higher_is_better = True

    def compute(self):
        if self.average == "micro":
            return _f_beta(self.tp.sum(0), self.fp.sum(0), self.fn.sum(0))
        return self._reduce(_f_beta(self.tp, self.fp, self.fn))


class MulticlassF1Score(_F1, _MulticlassStatScores):
    pass


class MultilabelF1Score(_F1, _MultilabelStatScores):
    pass


class BinaryPrecision(_BinaryStatScores):
    def compute(self):
        return _safe_divide(self.tp, self.tp + self.fp)


class BinaryRecall(_BinaryStatScores):
    def compute(self):
        return _safe_divide(self.tp, self.tp + self.fn)


class _PrecisionRecall(_StatScores):
    """tp / (tp + fp) for precision, tp / (tp + fn) for recall (`_other`), per class or label."""

    def compute(self):
        other = getattr(self, self._other)
        if self.average == "micro":
            return _safe_divide(self.tp.sum(0), (self.tp + other).sum(0))
        return self._reduce(_safe_divide(self.tp, self.tp + other), self.top_k)


class _Precision(_PrecisionRecall):
    _other = "fp"


class _Recall(_PrecisionRecall):
    _other = "fn"


class MulticlassPrecision(_Precision, _MulticlassStatScores):
    pass


class MultilabelPrecision(_Precision, _MultilabelStatScores):
    pass


class MulticlassRecall(_Recall, _MulticlassStatScores):
    pass


class MultilabelRecall(_Recall, _MultilabelStatScores):
    pass


def _task(name, binary, multiclass, multilabel):
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
                if not isinstance(num_labels, int):
                    raise ValueError(f"`num_labels` is expected to be `int` but `{type(num_labels).__name__} was passed.`")
                return multilabel(num_labels, threshold, average, multidim_average, ignore_index, validate_args, **kwargs)
            raise ValueError(f"Invalid Classification: expected one of ('binary', 'multiclass', 'multilabel') but got {task}")

    Task.__name__ = Task.__qualname__ = name
    return Task


Accuracy = _task("Accuracy", BinaryAccuracy, MulticlassAccuracy, MultilabelAccuracy)
F1Score = _task("F1Score", BinaryF1Score, MulticlassF1Score, MultilabelF1Score)
Precision = _task("Precision", BinaryPrecision, MulticlassPrecision, MultilabelPrecision)
Recall = _task("Recall", BinaryRecall, MulticlassRecall, MultilabelRecall)
