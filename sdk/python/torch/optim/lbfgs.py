"""torch.optim.LBFGS: limited-memory BFGS, run in the plugin. Each `step(closure)` re-evaluates
the closure several times (loss and gradients at trial points): in manual optimization the
file's own closure (Lightning's documented pattern), in automatic optimization Lightning's
closure, which re-runs the batch's training_step and backward (lthost's first evaluation is
the one the host already made). The gradients it reads are the host's, fresh after each
evaluation. Numerically torch's algorithm: the same ops on the same flat vectors, in the same
order (tensors where torch has tensors, Python floats where it has floats), so the same seed
gives torch's iterates, with a fixed step (`line_search_fn=None`) or the strong-Wolfe line
search (bracketing, then zooming with cubic interpolation)."""

from .. import cat, enable_grad, zeros
from .optimizer import Optimizer


class LBFGS(Optimizer):
    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if not 0.0 <= float(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise RuntimeError("only 'strong_wolfe' is supported")
        max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")

    def _params(self):
        return self.param_groups[0]["params"]

    def _flat_grad(self):
        """Every parameter's gradient as one vector (zeros where a parameter has none)."""
        parts = []
        for p in self._params():
            g = p.grad
            parts.append(zeros(p.numel(), dtype=p.dtype) if g is None else g.view(-1))
        return cat(parts, 0)

    def _move(self, t, direction):
        """Each parameter += t · its slice of `direction`."""
        at = 0
        for p in self._params():
            n = p.numel()
            p.add_(direction[at : at + n].view_as(p), alpha=t)
            at += n

    def step(self, closure):
        group = self.param_groups[0]
        lr, history = group["lr"], group["history_size"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        state = self.state[self._params()[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        def evaluate():
            with enable_grad():
                return closure()

        orig_loss = evaluate()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if g.abs().max() <= tol_grad:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        dirs, steps, rho = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag, prev_g, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
        it = 0
        while it < max_iter:
            it += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, dirs, steps, rho, h_diag = g.neg(), [], [], [], 1
            else:
                # The curvature pair of the last move, kept when it is positive.
                y, s = g.sub(prev_g), d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(dirs) == history:
                        del dirs[0], steps[0], rho[0]
                    dirs.append(y)
                    steps.append(s)
                    rho.append(1.0 / ys)
                    h_diag = ys / y.dot(y)
                # Two-loop recursion: d = -H·g.
                alpha = state.setdefault("al", [None] * history)
                q = g.neg()
                for i in range(len(dirs) - 1, -1, -1):
                    alpha[i] = steps[i].dot(q) * rho[i]
                    q.add_(dirs[i], alpha=-alpha[i])
                d = r = q * h_diag
                for i in range(len(dirs)):
                    beta = dirs[i].dot(r) * rho[i]
                    r.add_(steps[i], alpha=alpha[i] - beta)
            if prev_g is None:
                prev_g = g.clone()
            else:
                prev_g.copy_(g)
            prev_loss = loss
            if state["n_iter"] == 1:
                first = 1.0 / g.abs().sum()
                t = (first if first < 1.0 else 1.0) * lr
            else:
                t = lr
            gtd = g.dot(d)
            if gtd > -tol_change:
                break
            moved, optimal = 0, False
            if group["line_search_fn"] == "strong_wolfe":
                start = [p.clone() for p in self._params()]

                def trial(step):
                    """The loss and gradient at start + step·d; the parameters back at start."""
                    self._move(step, d)
                    f = float(evaluate())
                    grad = self._flat_grad()
                    for p, p0 in zip(self._params(), start):
                        p.copy_(p0)
                    return f, grad

                loss, g, t, moved = _strong_wolfe(trial, t, d, loss, g, gtd, max_evals=max_eval - evals)
                self._move(t, d)
                optimal = g.abs().max() <= tol_grad
            else:
                self._move(t, d)
                if it != max_iter:
                    loss = float(evaluate())
                    g = self._flat_grad()
                    optimal = g.abs().max() <= tol_grad
                    moved = 1
            evals += moved
            state["func_evals"] += moved
            if it == max_iter or evals >= max_eval or optimal:
                break
            if d.mul(t).abs().max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        state.update(d=d, t=t, old_dirs=dirs, old_stps=steps, ro=rho, H_diag=h_diag, prev_flat_grad=prev_g, prev_loss=prev_loss)
        return orig_loss


def _cubic_min(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clamped to
    `bounds` (default: between the two points); their midpoint when the cubic has none."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1**2 - g1 * g2
    if not disc >= 0:
        return (lo + hi) / 2.0
    d2 = disc.sqrt()
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


class _Point:
    """A trial step of the line search: its step, loss, gradient and slope along d."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t, f, g, gtd):
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def _strong_wolfe(trial, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_evals=25):
    """A step along d meeting the strong Wolfe conditions (sufficient decrease c1, curvature c2),
    from `t`: brackets one by growing the step (cubic extrapolation), then narrows the bracket
    by cubic interpolation, nudging a trial that makes too little progress away from the ends.
    (loss, gradient, step, evaluations) at the step taken."""
    scale = d.abs().max()
    origin = _Point(0, f, g.clone(), gtd)
    f_new, g_new = trial(t)
    evals, rounds = 1, 0
    gtd_new = g_new.dot(d)
    prev = origin
    ends, found = None, False
    # Bracketing.
    while rounds < max_evals:
        if f_new > (f + c1 * t * gtd) or (rounds > 1 and f_new >= prev.f):
            ends = [prev, _Point(t, f_new, g_new.clone(), gtd_new)]
            break
        if abs(gtd_new) <= -c2 * gtd:
            ends, found = [_Point(t, f_new, g_new, None)], True
            break
        if gtd_new >= 0:
            ends = [prev, _Point(t, f_new, g_new.clone(), gtd_new)]
            break
        low, high = t + 0.01 * (t - prev.t), t * 10
        here = t
        t = _cubic_min(prev.t, prev.f, prev.gtd, t, f_new, gtd_new, bounds=(low, high))
        prev = _Point(here, f_new, g_new.clone(), gtd_new)
        f_new, g_new = trial(t)
        evals += 1
        gtd_new = g_new.dot(d)
        rounds += 1
    if rounds == max_evals:
        ends = [_Point(0, f, g, None), _Point(t, f_new, g_new, None)]
    # Zoom.
    stalled = False
    lo, hi = (0, 1) if ends[0].f <= ends[-1].f else (1, 0)
    while not found and rounds < max_evals:
        a, b = ends[0], ends[1]
        if abs(b.t - a.t) * scale < tolerance_change:
            break
        t = _cubic_min(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        top, bottom = max(a.t, b.t), min(a.t, b.t)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:
            if stalled or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        f_new, g_new = trial(t)
        evals += 1
        gtd_new = g_new.dot(d)
        rounds += 1
        if f_new > (f + c1 * t * gtd) or f_new >= ends[lo].f:
            ends[hi] = _Point(t, f_new, g_new.clone(), gtd_new)
            lo, hi = (0, 1) if ends[0].f <= ends[1].f else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                found = True
            elif gtd_new * (ends[hi].t - ends[lo].t) >= 0:
                ends[hi] = ends[lo]
            ends[lo] = _Point(t, f_new, g_new.clone(), gtd_new)
    best = ends[lo]
    return best.f, best.g, best.t, evals
