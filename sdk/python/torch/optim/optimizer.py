"""torch.optim optimizers: parameter groups as torch builds them. SGD, Adam, AdamW, RMSprop
and Adagrad update in the host (`lt:plugin/optimization`), so `step()`/`zero_grad()` in manual
optimization call it there; a user's subclass with its own `step` (Lion, ...) runs that step
in the plugin, under no_grad, with each parameter's `.grad` the host's accumulated gradient."""

import functools

from wit_world.imports import optimization, trainer


class Optimizer:
    """torch.optim.Optimizer: `param_groups` (each a dict with "params" and the options),
    `defaults`, `state`."""

    _algorithm = None
    # Whether the host runs the update (the built-in algorithms); a user's subclass with its
    # own `step` runs it in the plugin.
    _in_host = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "step" in cls.__dict__ and not cls.__dict__.get("_in_host", False):
            cls.step = _plugin_step(cls.__dict__["step"])
            cls._in_host = False  # its own step, even over a built-in algorithm

    def __init__(self, params, defaults):
        from .. import Tensor

        self.defaults, self.state, self.param_groups = dict(defaults), _State(), []
        self._index, self._schedulers, self._manual = None, [], False
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, but got torch.Tensor")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for g in params:  # named parameters, as torch 2.13 takes them: (name, tensor) pairs
            ps = g["params"] if not isinstance(g["params"], Tensor) else [g["params"]]
            g["params"] = [p[1] if isinstance(p, tuple) else p for p in ps]
        for g in params:
            self.add_param_group(g)

    def add_param_group(self, group):
        from .. import Tensor

        g = dict(group)
        ps = g["params"]
        g["params"] = [ps] if isinstance(ps, Tensor) else list(ps)
        for k, v in self.defaults.items():
            g.setdefault(k, v)
        seen = {id(p) for other in self.param_groups for p in other["params"]}
        if any(id(p) in seen for p in g["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(g)

    def _bound(self, what):
        if self._index is None:
            raise RuntimeError(f"optimizer.{what}(): the optimizer runs in the host once configure_optimizers returned it")
        return self._index

    def _push(self, momentum=False):
        """Hands this side's group learning rates (and momenta) to the host's optimizer."""
        i = self._bound("step")
        for k, g in enumerate(self.param_groups):
            optimization.set_lr(i, k, float(g["lr"]))
            if momentum:
                m = g["betas"][0] if "betas" in g else g.get("momentum")
                if m is not None:
                    optimization.set_momentum(i, k, float(m))

    def _pull(self):
        """Takes the host optimizer's group learning rates and momenta (after a resume)."""
        i = self._bound("step")
        for k, g in enumerate(self.param_groups):
            g["lr"] = optimization.lr(i, k)
            m = optimization.momentum(i, k)
            if m is not None and "betas" in g:
                g["betas"] = (m, *g["betas"][1:])
            elif m is not None and "momentum" in g:
                g["momentum"] = m

    def step(self, closure=None):
        """The host's update; with a closure, torch's contract: the closure first (with grad
        enabled: the loss and its gradients), its loss returned."""
        loss = None
        if closure is not None:
            from .. import enable_grad

            with enable_grad():
                loss = closure()
        if self._schedulers:  # manual optimization: what `scheduler.step()` set applies now
            self._push(any(s._cycles_momentum for s in self._schedulers))
        optimization.step(self._bound("step"))
        return loss

    def zero_grad(self, set_to_none=True):
        if self._index is None and not self._in_host:  # one of the plugin's own, not handed to the host
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is not None:
                        if set_to_none:
                            p.grad = None
                        else:
                            p.grad.zero_()
            return
        optimization.zero_grad(self._bound("zero_grad"))

    def state_dict(self):
        """torch's form: {"state": {index: {name: value}}, "param_groups": [{..., "params": [index, ...]}]}."""
        if self.in_host():
            raise NotImplementedError("optimizer.state_dict(): a built-in optimizer's state is in the host and in lthost's checkpoints")
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        if self.in_host():
            raise NotImplementedError("optimizer.load_state_dict(): a built-in optimizer's state is restored from lthost's checkpoints")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        params = [p for g in self.param_groups for p in g["params"]]
        for g, saved in zip(self.param_groups, groups):
            if len(saved["params"]) != len(g["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of optimizer's group")
            g.update({k: v for k, v in saved.items() if k != "params"})
        self.state = _State()
        for k, s in state_dict["state"].items():
            self.state[params[int(k)]] = dict(s)

    @classmethod
    def in_host(cls):
        return cls._in_host

    def __repr__(self):
        return f"{type(self).__name__} ({len(self.param_groups)} parameter groups, {self.defaults})"


class SGD(Optimizer):
    _in_host = True

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False, foreach=None, differentiable=False, fused=None):
        if maximize:
            raise NotImplementedError("SGD(maximize=True) is not supported by lthost")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov))


class Adam(Optimizer):
    _in_host = True
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, foreach=None, maximize=False, capturable=False, differentiable=False, fused=None, decoupled_weight_decay=False):
        if maximize:
            raise NotImplementedError(f"{type(self).__name__}(maximize=True) is not supported by lthost")
        self._decoupled = self._decoupled or decoupled_weight_decay
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))


class AdamW(Adam):
    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **kwargs):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **kwargs)


class RMSprop(Optimizer):
    _in_host = True

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, **kwargs):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered))


class Adagrad(Optimizer):
    _in_host = True

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, **kwargs):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value, eps=eps))


class _State(dict):
    """`optimizer.state`: per-parameter dicts, keyed by the parameter object (a defaultdict,
    as torch's)."""

    def __missing__(self, key):  # tensors hash by identity: a parameter is its own key
        v = self[key] = {}
        return v


def _refreshing_closure(args, kwargs, take_grads):
    """The step's arguments with its closure (first positional or `closure=`) made to read
    the host's gradients again after each evaluation: `.grad` is live in torch, and an
    optimizer that re-evaluates (LBFGS) must see the new ones."""
    closure = kwargs.get("closure", args[0] if args else None)
    if closure is None:
        return args, kwargs

    def evaluate(*a, **k):
        out = closure(*a, **k)
        take_grads()
        return out

    if "closure" in kwargs:
        return args, {**kwargs, "closure": evaluate}
    return (evaluate, *args[1:]), kwargs


def _plugin_step(step):
    """A user optimizer's `step` as the host runs it: each parameter's `.grad` the host's
    accumulated gradient, under no_grad, with the groups' rates as the host has them (in manual
    optimization, as the file's schedulers left them, handed to the host); in manual
    optimization, counted by the host after."""

    @functools.wraps(step)
    def run(self, *args, **kwargs):
        if self._index is None:  # not handed to the host (outside configure_optimizers' result)
            from .. import no_grad

            with no_grad():
                return step(self, *args, **kwargs)
        from .. import _core, no_grad

        if self._manual:  # the file steps its schedulers: their rates are this side's
            self._push(any(s._cycles_momentum for s in self._schedulers))
        else:  # the host's: what the plugin's schedulers pushed, or the LR finder's
            self._pull()
        params = [p for g in self.param_groups for p in g["params"]]
        closure_loss = None
        if self._manual and trainer.precision() == "16-mixed":
            # Lightning's MixedPrecision.optimizer_step: the closure first (its backward
            # scaled), then the gradients unscaled, then the step without the closure.
            closure = kwargs.pop("closure", None)
            if closure is None and args:
                closure, args = args[0], args[1:]
            if closure is not None:
                from .. import enable_grad

                with enable_grad():
                    closure_loss = closure()
        # 16-mixed in manual optimization: a step whose gradients overflowed is skipped
        # (torch's GradScaler.step), still counted. True without a scaler.
        if self._manual and not optimization.unscale(self._index):
            optimization.step(self._index)
            return closure_loss

        def take_grads():
            for p, g in zip(params, optimization.grads(self._index)):
                p.__dict__["_lt_grad"] = None if g is None else _core.wrap(g)

        take_grads()
        args, kwargs = _refreshing_closure(args, kwargs, take_grads)
        try:
            with no_grad():
                out = step(self, *args, **kwargs)
        finally:
            for p in params:
                p.__dict__.pop("_lt_grad", None)
        if self._manual:
            optimization.step(self._index)
        return out

    return run
