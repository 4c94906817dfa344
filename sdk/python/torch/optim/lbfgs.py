"""torch.optim.LBFGS: limited-memory BFGS, run in the plugin. Each `step(closure)` re-evaluates
the closure several times (loss and gradients at trial points): in manual optimization the
file's own closure (Lightning's documented pattern), in automatic optimization Lightning's
closure, which re-runs the batch's training_step and backward (lthost's first evaluation is
the one the host already made). The gradients it reads are the host's, fresh after each
evaluation. Numerically torch's algorithm: the same ops on the same flat vectors, in the same
order, so the same seed gives torch's iterates. The strong-Wolfe line search is not provided."""

from .. import cat, enable_grad, zeros
from .optimizer import Optimizer


class LBFGS(Optimizer):
    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if not 0.0 <= float(lr):
            raise ValueError(f"Invalid learning rate: {lr}")
        if line_search_fn is not None:
            if line_search_fn != "strong_wolfe":
                raise RuntimeError("only 'strong_wolfe' is supported")
            raise NotImplementedError("LBFGS(line_search_fn='strong_wolfe') is not supported by lthost; use line_search_fn=None")
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
            if g.dot(d) > -tol_change:
                break
            self._move(t, d)
            moved = 0
            if it != max_iter:
                loss = float(evaluate())
                g = self._flat_grad()
                moved = 1
            evals += moved
            state["func_evals"] += moved
            if it == max_iter or evals >= max_eval or (moved and g.abs().max() <= tol_grad):
                break
            if d.mul(t).abs().max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        state.update(d=d, t=t, old_dirs=dirs, old_stps=steps, ro=rho, H_diag=h_diag, prev_flat_grad=prev_g, prev_loss=prev_loss)
        return orig_loss
