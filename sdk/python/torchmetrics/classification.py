"""torchmetrics' classification metrics on stat scores (true/false positives/negatives), with
torchmetrics 1.9's formats and reductions: binary (probabilities or logits, thresholded),
multiclass (labels or scores; `top_k > 1` counts a sample right when its target is among its
top k scores, as 1.9 does) and multilabel (probabilities or logits per label, thresholded),
averaged `micro`, `macro` (multiclass: classes never seen in targets or predictions left out),
`weighted` or `none`; the extra dimensions `...` of `(N, ...)` inputs `global` (flattened into
the batch) or `samplewise` (one score per sample: the counts kept per sample, as lists
concatenated at `compute`)."""

import torch

from .metric import Metric

_AVERAGES = ("micro", "macro", "weighted", "none", None)


def _safe_divide(num, denom):
    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(num))


class _StatScores(Metric):
    def _check(self, multidim_average, average="micro"):
        if multidim_average not in ("global", "samplewise"):
            raise ValueError(f"Expected argument `multidim_average` to be one of ('global', 'samplewise'), but got {multidim_average}")
        if average not in _AVERAGES:
            raise ValueError(f"Expected argument `average` to be one of {_AVERAGES}, but got {average}")
        self.multidim_average = multidim_average

    @property
    def _samplewise(self):
        return self.multidim_average == "samplewise"

    def _stat_states(self, size):
        for s in ("tp", "fp", "tn", "fn"):
            if self._samplewise:
                self.add_state(s, [], dist_reduce_fx="cat")
            else:
                self.add_state(s, torch.zeros(size, dtype=torch.long), dist_reduce_fx="sum")

    def _add(self, tp, fp, tn, fn):
        """One update's counts: appended per sample (samplewise), else summed."""
        for name, v in (("tp", tp), ("fp", fp), ("tn", tn), ("fn", fn)):
            if self._samplewise:
                getattr(self, name).append(v)
            else:
                setattr(self, name, getattr(self, name) + v)

    def _counts(self):
        """(tp, fp, tn, fn): samplewise, the samples' counts concatenated (a sample's 0-dim
        count as one row)."""
        if not self._samplewise:
            return self.tp, self.fp, self.tn, self.fn
        out = []
        for xs in (self.tp, self.fp, self.tn, self.fn):
            if not xs:
                raise ValueError("No samples to concatenate")
            out.append(torch.cat([x.unsqueeze(0) if x.ndim == 0 else x for x in xs], 0))
        return tuple(out)

    @property
    def _class_dim(self):
        """The dimension a micro average sums over (classes or labels)."""
        return 1 if self._samplewise else 0

    def _at_least(self, preds, ndim):
        if self._samplewise and preds.ndim < ndim:
            raise ValueError(f"Expected input to be at least {ndim}D when multidim_average is set to `samplewise`")


class _BinaryStatScores(_StatScores):
    def __init__(self, threshold=0.5, multidim_average="global", ignore_index=None, validate_args=True, **kwargs):
        super().__init__(**kwargs)
        self._check(multidim_average)
        self.threshold, self.ignore_index = threshold, ignore_index
        self._stat_states(())

    def update(self, preds, target):
        self._at_least(preds, 2)
        if preds.is_floating_point():
            if not bool(((preds >= 0) & (preds <= 1)).all()):
                preds = preds.sigmoid()
            preds = preds > self.threshold
        if self._samplewise:
            preds, target = preds.reshape(preds.shape[0], -1), target.reshape(target.shape[0], -1)
            if self.ignore_index is not None:
                target = target.clone()
                target[target == self.ignore_index] = -1
            preds, target = preds.long(), target.long()
            self._add(*(((target == preds) & (target == 1)).sum([1]).squeeze(), ((target != preds) & (target == 0)).sum([1]).squeeze(),
                        ((target == preds) & (target == 0)).sum([1]).squeeze(), ((target != preds) & (target == 1)).sum([1]).squeeze()))
            return
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
        self._at_least(preds, 3 if preds.is_floating_point() and preds.ndim == target.ndim + 1 else 2)
        if self.top_k > 1:
            self._update_one_hot(preds, target)
            return
        if preds.is_floating_point() and preds.ndim == target.ndim + 1:
            preds = preds.argmax(dim=1)
        if self._samplewise:
            self._update_one_hot(preds.reshape(preds.shape[0], -1), target)
            return
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

    def _update_one_hot(self, preds, target):
        """Per class, one-hot: scores (N, C, ...) with top_k > 1 (each sample's target where it
        is among its top k scores, else its top score), or labels (N, L) samplewise, against
        labels (N, ...); an ignored target counts nowhere. Summed over the samples too unless
        samplewise."""
        c, ignore, k = self.num_classes, self.ignore_index, self.top_k
        if k > 1 and (not preds.is_floating_point() or preds.ndim != target.ndim + 1):
            raise ValueError("torchmetrics `top_k > 1` expects floating scores with one more dimension than the target")
        if k > 1:
            preds = preds.reshape(*preds.shape[:2], -1)
        target = target.reshape(target.shape[0], -1)
        inside = ignore is not None and 0 <= ignore <= c - 1
        if ignore is not None and not inside:
            preds, target = preds.clone(), target.clone()
            idx = target == ignore
            target[idx] = c
            preds[idx.unsqueeze(1).repeat(1, c, 1) if preds.ndim > target.ndim else idx] = c
        width = c + 1 if ignore is not None and not inside else c
        if k > 1:
            top = preds.topk(k=k, dim=1).indices
            hit = (top == target.unsqueeze(1)).any(dim=1)
            chosen = torch.where(hit, target, top[:, 0])
            preds_oh = torch.zeros(*chosen.shape, c, dtype=torch.int32).scatter_(-1, chosen.unsqueeze(-1), 1)
        else:
            preds_oh = torch.nn.functional.one_hot(preds.long(), width)
        target_oh = torch.nn.functional.one_hot(target.long(), width)
        if ignore is not None:
            if inside:
                target_oh[target == ignore, :] = -1
            else:
                preds_oh = preds_oh[..., :-1] if k == 1 else preds_oh
                target_oh = target_oh[..., :-1]
                target_oh[target == c, :] = -1
        dims = [1] if self._samplewise else [0, 1]
        self._add(((target_oh == preds_oh) & (target_oh == 1)).sum(dims), ((target_oh != preds_oh) & (target_oh == 0)).sum(dims),
                  ((target_oh == preds_oh) & (target_oh == 0)).sum(dims), ((target_oh != preds_oh) & (target_oh == 1)).sum(dims))

    def _reduce(self, score, tp, fp, fn, top_k=1):
        if self.average in ("none", None):
            return score
        if self.average == "weighted":
            weights = (tp + fn).float()
        else:
            weights = torch.ones_like(score)
            weights[tp + fp + fn == 0 if top_k == 1 else tp + fn == 0] = 0.0
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
        self._at_least(preds, 3)
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
        dims = [-1] if self._samplewise else [0, -1]
        self._add(((target == preds) & (target == 1)).sum(dims).squeeze(), ((target != preds) & (target == 0)).sum(dims).squeeze(),
                  ((target == preds) & (target == 0)).sum(dims).squeeze(), ((target != preds) & (target == 1)).sum(dims).squeeze())

    def _reduce(self, score, tp, fp, fn, top_k=1):
        if self.average in ("none", None):
            return score
        weights = (tp + fn).float() if self.average == "weighted" else torch.ones_like(score)
        return _safe_divide(weights * score, weights.sum(-1, keepdim=True)).sum(-1)


class BinaryAccuracy(_BinaryStatScores):
    higher_is_better = True

    def compute(self):
        tp, fp, tn, fn = self._counts()
        return _safe_divide(tp + tn, tp + tn + fp + fn)


class MulticlassAccuracy(_MulticlassStatScores):
    higher_is_better = True

    def compute(self):
        tp, fp, _, fn = self._counts()
        if self.average == "micro":
            d = self._class_dim
            return _safe_divide(tp.sum(d), tp.sum(d) + fn.sum(d))
        return self._reduce(_safe_divide(tp, tp + fn), tp, fp, fn, self.top_k)


class MultilabelAccuracy(_MultilabelStatScores):
    higher_is_better = True

    def compute(self):
        tp, fp, tn, fn = self._counts()
        if self.average == "micro":
            d = self._class_dim
            tp, fp, tn, fn = tp.sum(d), fp.sum(d), tn.sum(d), fn.sum(d)
            return _safe_divide(tp + tn, tp + tn + fp + fn)
        return self._reduce(_safe_divide(tp + tn, tp + tn + fp + fn), tp, fp, fn)


def _f_beta(tp, fp, fn, beta=1.0):
    b2 = beta * beta
    return _safe_divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)


class BinaryF1Score(_BinaryStatScores):
    higher_is_better = True

    def compute(self):
        tp, fp, _, fn = self._counts()
        return _f_beta(tp, fp, fn)


class _F1(_StatScores):
    """F1 over per-class or per-label counts (its macro weights as torchmetrics' F-beta
    reduction takes them: top_k plays no part)."""

    higher_is_better = True

    def compute(self):
        tp, fp, _, fn = self._counts()
        if self.average == "micro":
            d = self._class_dim
            return _f_beta(tp.sum(d), fp.sum(d), fn.sum(d))
        return self._reduce(_f_beta(tp, fp, fn), tp, fp, fn)


class MulticlassF1Score(_F1, _MulticlassStatScores):
    pass


class MultilabelF1Score(_F1, _MultilabelStatScores):
    pass


class BinaryPrecision(_BinaryStatScores):
    def compute(self):
        tp, fp, _, _ = self._counts()
        return _safe_divide(tp, tp + fp)


class BinaryRecall(_BinaryStatScores):
    def compute(self):
        tp, _, _, fn = self._counts()
        return _safe_divide(tp, tp + fn)


class _PrecisionRecall(_StatScores):
    """tp / (tp + fp) for precision, tp / (tp + fn) for recall (`_other`), per class or label."""

    def compute(self):
        tp, fp, _, fn = self._counts()
        other = fp if self._other == "fp" else fn
        if self.average == "micro":
            d = self._class_dim
            return _safe_divide(tp.sum(d), tp.sum(d) + other.sum(d))
        return self._reduce(_safe_divide(tp, tp + other), tp, fp, fn, self.top_k)


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


# The AUROC family lives in .auroc (it keeps scores, not stat scores); torchmetrics names them here.
from .auroc import AUROC, BinaryAUROC, MulticlassAUROC, MultilabelAUROC  # noqa: E402,F401
