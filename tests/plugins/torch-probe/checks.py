"""torch's Python API, checked the same way in torch itself (tests/reference/torch_api_reference.py)
and in a plugin (model.py, with lthost's `torch` package): `run(torch)` returns every check's
result as plain JSON values (tensors as nested lists, dtypes and shapes as strings/lists)."""


def _finite(v):
    """JSON has no infinities: they (and NaN) become strings."""
    if isinstance(v, list):
        return [_finite(e) for e in v]
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    return v


def _v(x, torch):
    if isinstance(x, torch.Tensor):
        return {"dtype": str(x.dtype), "shape": list(x.shape), "values": _finite(x.tolist())}
    if isinstance(x, (tuple, list)):
        return [_v(e, torch) for e in x]
    if isinstance(x, torch.dtype):
        return str(x)
    return x


def run(torch):
    F = torch.nn.functional
    nn = torch.nn
    out = {}

    def check(name, fn):
        try:
            out[name] = _v(fn(), torch)
        except Exception as e:  # the check's error is its result
            out[name] = {"error": type(e).__name__, "message": str(e)[:300]}

    x = torch.arange(24).view(2, 3, 4)
    f = x.float()
    check("shape", lambda: [list(x.shape), x.size(1), x.ndim, x.dim(), x.numel(), str(x.dtype)])
    check("view_varargs", lambda: x.view(4, 6))
    check("view_tuple", lambda: x.view((6, 4)).shape)
    # Past 2**53 a float64 rounds: int64 items come back exact (samplers draw such seeds).
    check("item_int64_exact", lambda: [torch.tensor(2**62 + 1).item(), torch.tensor([-(2**53) - 1]).item(), torch.tensor(True).item()])
    check("view_minus_one", lambda: x.view(-1, 8))
    check("reshape", lambda: f.reshape(3, -1))
    check("permute", lambda: x.permute(2, 0, 1))
    check("transpose_contiguous", lambda: x.transpose(0, 1).contiguous().view(3, 8))
    check("T", lambda: x[0].T)
    check("index_int", lambda: x[1])
    check("index_slices", lambda: x[:, 1:, ::2])
    check("index_negative", lambda: x[..., -1])
    check("index_none", lambda: x[None, :, 0].shape)
    check("index_list", lambda: x[[1, 0]])
    check("index_tensor", lambda: x[0, torch.tensor([2, 0])])
    check("index_mask", lambda: x[x > 20])
    check("index_mixed", lambda: x[1, :, [0, 3]])

    def setitems():
        y = torch.zeros(3, 4)
        y[0] = 1.0
        y[:, 1] = torch.tensor([5.0, 6.0, 7.0])
        y[y > 5.5] = -1.0
        y[2, [0, 3]] = 9.0
        return y

    check("setitem", setitems)
    check("split_int", lambda: f.split(2, dim=2))
    check("split_sizes", lambda: f.split([1, 2], dim=1))
    check("chunk", lambda: f.chunk(2, -1))
    check("unbind", lambda: list(x[0].unbind(0)))
    check("cat_stack", lambda: [torch.cat([f[0], f[1]], dim=1), torch.stack([f[0], f[1]]).shape])
    check("masked_fill", lambda: f[0].masked_fill(f[0] > 5, float("-inf")))
    check("tril_triu", lambda: [torch.ones(3, 3).tril(), torch.ones(3, 3).triu(diagonal=1)])
    check("reductions", lambda: [f.sum(), f.sum(1), f.sum(dim=(0, 2)), f.mean(-1, keepdim=True), f.var(1), f.std(), f.amax(2)])
    check("max_dim", lambda: [f.max(), f.max(1).values, f.max(dim=1).indices, torch.max(f[0], 1)[0]])
    check("argmax_topk_sort", lambda: [f.argmax(), f[0].argmax(-1), f[0].topk(2).values, torch.tensor([3.0, 1.0, 2.0]).sort(descending=True).indices])
    check("cumsum_where_clamp", lambda: [f[0].cumsum(1), torch.where(f[0] > 4, f[0], torch.zeros_like(f[0])), f[0].clamp(min=2, max=9)])
    check("gather", lambda: f[0].gather(1, torch.tensor([[0], [1], [2]])))
    check("arith", lambda: [f[0] + 1, 1 - f[0], 2 / (f[0] + 1), f[0] ** 2, 2 ** f[0, 0], x[0] // 3, x[0] % 3, -f[0], abs(-f[0])])
    check("promotion", lambda: [(x[0] + 1.5).dtype, (x > 3).sum().dtype, (x[0] * 2).dtype, (x[0] / 2).dtype, torch.tensor([True, False]).float()])
    check("compare", lambda: [f[0] == 5, f[0] != 5, f[0] >= 5, (f[0] > 2) & (f[0] < 9), ~(f[0] > 2)])
    check("matmul", lambda: [f[0] @ f[0].T, torch.matmul(f[0], torch.ones(4)), torch.mm(f[0], f[0].t())])
    check("einsum", lambda: torch.einsum("ij,kj->ik", f[0], f[1]))
    check("item_tolist", lambda: [f.sum().item(), x[0, 0, 1].item(), (f > 0).all().item(), f[0, 0].tolist()])
    check("factories", lambda: [torch.zeros(2, 3), torch.ones((2,)), torch.full((2, 2), 7.0), torch.arange(5), torch.arange(1, 10, 2), torch.linspace(0, 1, 5), torch.eye(3), torch.zeros_like(f[0, 0]), torch.ones(2, dtype=torch.int64)])
    check("tensor", lambda: [torch.tensor([[1, 2], [3, 4]]), torch.tensor([1.5, 2.5]), torch.tensor(3.0), torch.tensor([True]), torch.tensor([1, 2], dtype=torch.float64)])
    check("to_dtype", lambda: [f[0, 0].to(torch.int32), x[0, 0].double(), f[0, 0].long(), f[0, 0].bool(), f[0, 0].half().float()])
    check("functional", lambda: [F.softmax(f[0], dim=-1), F.log_softmax(f[0], -1), F.gelu(f[0] / 10, approximate="tanh"), F.relu(f[0] - 5), F.one_hot(torch.tensor([0, 2]), 3)])
    check("cross_entropy", lambda: [F.cross_entropy(f[0], torch.tensor([0, 1, 2])), F.cross_entropy(f[0], torch.tensor([0, -100, 2]), ignore_index=-100), F.cross_entropy(f[0], torch.tensor([0, 1, 2]), reduction="none", label_smoothing=0.1)])
    check("layer_norm", lambda: F.layer_norm(f[0], (4,)))
    check("sdpa", lambda: F.scaled_dot_product_attention(f[:1] / 10, f[:1] / 10, f[:1] / 10, is_causal=True))
    check("pad_pool", lambda: [F.pad(f[0], (1, 1)), F.max_pool2d(f[:1], 2), F.adaptive_avg_pool2d(f[:1], (1, 2)), F.avg_pool2d(f[:1], 2)])

    def grad():
        w = torch.ones(3, requires_grad=True)
        (w * w * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
        with torch.no_grad():
            inside = (w * 2).requires_grad
        return [w.grad, inside, (w * 2).requires_grad, w.requires_grad]

    check("autograd", grad)

    def caught():
        try:
            torch.mm(f[0], f[0])
        except RuntimeError as e:
            return "mat1 and mat2 shapes cannot be multiplied" in str(e)
        return "no error"

    check("op_error_is_a_runtime_error", caught)

    def modules():
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 2), nn.LayerNorm(2)))
        block = nn.ModuleDict({"bn": nn.BatchNorm1d(3), "emb": nn.Embedding(5, 2)})
        heads = nn.ModuleList([nn.Linear(2, 2, bias=False) for _ in range(2)])
        return [
            [n for n, _ in model.named_parameters()],
            list(model.state_dict().keys()),
            list(block.state_dict().keys()),
            [n for n, _ in heads.named_parameters()],
            sum(p.numel() for p in model.parameters()),
            [type(m).__name__ for m in model.modules()],
            isinstance(model[0].weight, nn.Parameter),
            model[0].weight.requires_grad,
        ]

    check("modules", modules)

    def init_draws():
        lin = nn.Linear(4, 3)
        conv = nn.Conv2d(2, 3, 3)
        emb = nn.Embedding(4, 2)
        w = torch.empty(3, 5)
        nn.init.xavier_uniform_(w)
        return [lin.weight, lin.bias, conv.bias, emb.weight, w]

    check("init_draws", init_draws)

    def forward_backward():
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        inp = torch.arange(8.0).view(2, 4) / 8
        loss = F.mse_loss(model(inp), torch.ones(2, 2))
        loss.backward()
        return [loss, model[0].weight.grad, model[2].bias.grad]

    check("forward_backward", forward_backward)

    def grad_modes():
        w = torch.ones(2, requires_grad=True)
        with torch.set_grad_enabled(False):
            off = (w * 2).requires_grad
        on = (w * 2).requires_grad
        torch.set_grad_enabled(False)
        plain = torch.is_grad_enabled()
        torch.set_grad_enabled(True)

        @torch.no_grad
        def bare(t):
            return (t * 2).requires_grad

        @torch.no_grad()
        def called(t):
            return (t * 2).requires_grad

        @torch.enable_grad()
        def enabled(t):
            return (t * 2).requires_grad

        return [off, on, plain, torch.is_grad_enabled(), bare(w), called(w), enabled(w)]

    check("grad_modes", grad_modes)

    def construction():
        t = torch.Tensor(2, 3)
        leaf = torch.ones(2, requires_grad=True)
        return [
            list(t.shape), str(t.dtype), torch.Tensor([1, 2]), torch.tensor(torch.arange(3), dtype=torch.float64),
            leaf.is_leaf, (leaf * 2).is_leaf, torch.ones(2).new_tensor([3, 4]), nn.Parameter(torch.Tensor(2, 2)).shape,
        ]

    check("construction", construction)

    def more_init():
        a = torch.empty(64, 8)
        nn.init.trunc_normal_(a, std=0.02)
        b = torch.empty(40)
        nn.init.trunc_normal_(b, mean=0.0, std=1.0, a=2.0, b=3.0)
        c = torch.empty(3, 5)
        nn.init.kaiming_normal_(c, mode="fan_out", nonlinearity="relu")
        return [a, b, c]

    check("more_init", more_init)

    def state_keys():
        return [
            list(nn.CrossEntropyLoss(weight=torch.ones(3)).state_dict().keys()),
            list(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1)).state_dict().keys()),
        ]

    check("state_keys", state_keys)

    def schedule(make, opt="sgd", steps=25, metric=None):
        """The rates (and momenta) over `steps` steps, and after a state_dict round trip."""
        S = torch.optim.lr_scheduler
        groups = [{"params": [nn.Parameter(torch.zeros(2))]}, {"params": [nn.Parameter(torch.zeros(1))], "lr": 0.05}]
        def optimizer():
            if opt == "sgd":
                return torch.optim.SGD([dict(g) for g in groups], lr=0.1, momentum=0.9)
            return torch.optim.Adam([dict(g) for g in groups], lr=0.1)
        o = optimizer()
        s = make(S, o)
        seen = []
        for i in range(steps):
            s.step() if metric is None else s.step(metric(i))
            g = o.param_groups
            seen.append([g[0]["lr"], g[1]["lr"], g[0].get("momentum", g[0].get("betas", (None,))[0])])
            if i == 9:
                state = s.state_dict()
        o2 = optimizer()
        s2 = make(S, o2)
        s2.load_state_dict(state)
        for k, g in enumerate(o2.param_groups):
            g["lr"] = seen[9][k]
        for i in range(10, steps):
            s2.step() if metric is None else s2.step(metric(i))
        return [seen, [g["lr"] for g in o2.param_groups], s.get_last_lr()]

    check("sched_lambda", lambda: schedule(lambda S, o: S.LambdaLR(o, lambda e: 0.9 ** e)))
    check("sched_lambda_per_group", lambda: schedule(lambda S, o: S.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.5])))
    check("sched_multiplicative", lambda: schedule(lambda S, o: S.MultiplicativeLR(o, lambda e: 0.95)))
    check("sched_step", lambda: schedule(lambda S, o: S.StepLR(o, step_size=4, gamma=0.5)))
    check("sched_multistep", lambda: schedule(lambda S, o: S.MultiStepLR(o, milestones=[3, 7, 7, 12], gamma=0.3)))
    check("sched_constant", lambda: schedule(lambda S, o: S.ConstantLR(o, factor=0.25, total_iters=6)))
    check("sched_linear", lambda: schedule(lambda S, o: S.LinearLR(o, start_factor=0.1, total_iters=8)))
    check("sched_exponential", lambda: schedule(lambda S, o: S.ExponentialLR(o, gamma=0.9)))
    check("sched_polynomial", lambda: schedule(lambda S, o: S.PolynomialLR(o, total_iters=12, power=2.0)))
    check("sched_cosine", lambda: schedule(lambda S, o: S.CosineAnnealingLR(o, T_max=7, eta_min=0.001)))
    check("sched_warm_restarts", lambda: schedule(lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=4, T_mult=2, eta_min=0.01)))
    check("sched_cyclic", lambda: schedule(lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="triangular2")))
    check("sched_cyclic_adam", lambda: schedule(lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=4, step_size_down=2, mode="exp_range", gamma=0.9), "adam"))
    check("sched_one_cycle", lambda: schedule(lambda S, o: S.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=30)))
    check("sched_one_cycle_adam", lambda: schedule(lambda S, o: S.OneCycleLR(o, max_lr=0.3, total_steps=25, three_phase=True, anneal_strategy="linear"), "adam"))
    check("sched_plateau", lambda: schedule(lambda S, o: S.ReduceLROnPlateau(o, patience=2, factor=0.5, cooldown=1), metric=lambda i: 1.0 if i > 3 else 2.0 - i))
    check("sched_sequential", lambda: schedule(lambda S, o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.2, total_iters=5), S.CosineAnnealingLR(o, T_max=15)], milestones=[5])))
    check("sched_chained", lambda: schedule(lambda S, o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=4), S.ExponentialLR(o, gamma=0.9)])))

    def metrics():
        import torchmetrics
        from torchmetrics.classification import MulticlassAccuracy

        preds = [torch.tensor([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]), torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])]
        target = [torch.tensor([1, 0, 1, 2]), torch.tensor([0, 2])]
        micro = torchmetrics.Accuracy(task="multiclass", num_classes=3)
        macro = MulticlassAccuracy(num_classes=3)
        f1 = torchmetrics.F1Score(task="multiclass", num_classes=3, average="macro")
        steps = [[micro(p, t), macro(p, t), f1(p, t)] for p, t in zip(preds, target)]
        binary = torchmetrics.Accuracy(task="binary")
        binary.update(torch.tensor([-1.0, 2.0, 0.3, -0.2]), torch.tensor([0, 1, 0, 1]))
        mean = torchmetrics.MeanMetric()
        mean.update(torch.tensor([1.0, 2.0]))
        mean.update(4.0, weight=3.0)
        mse = torchmetrics.MeanSquaredError(squared=False)
        mse.update(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.5, 2.0, 3.0]))
        values = [steps, micro.compute(), macro.compute(), f1.compute(), binary.compute(), mean.compute(), mse.compute()]
        micro.reset()
        micro.update(preds[1], target[1])
        return values + [micro.compute()]

    check("metrics", metrics)

    def metrics_top_k():
        import torchmetrics

        preds = torch.tensor([[0.1, 0.5, 0.3, 0.1], [0.6, 0.1, 0.2, 0.1], [0.2, 0.2, 0.5, 0.1], [0.3, 0.35, 0.25, 0.1], [0.1, 0.2, 0.3, 0.4]])
        target = torch.tensor([2, 0, 3, 0, 1])
        out = []
        for average in ("micro", "macro", "weighted", "none"):
            for name in ("Accuracy", "Precision", "Recall", "F1Score"):
                m = getattr(torchmetrics, name)(task="multiclass", num_classes=4, top_k=2, average=average)
                m.update(preds, target)
                out.append([name, average, m.compute()])
        ignored = torchmetrics.Accuracy(task="multiclass", num_classes=4, top_k=2, average="macro", ignore_index=1)
        ignored.update(preds, target)
        outside = torchmetrics.Recall(task="multiclass", num_classes=4, top_k=3, average="macro", ignore_index=-1)
        outside.update(preds, torch.tensor([2, -1, 3, 0, 1]))
        return out + [ignored.compute(), outside.compute()]

    check("metrics_top_k", metrics_top_k)

    def metrics_multilabel():
        import torchmetrics

        preds = [torch.tensor([[0.9, 0.2, 0.7], [0.3, 0.8, 0.4], [0.6, 0.6, 0.1]]), torch.tensor([[-1.0, 2.0, 0.5], [3.0, -2.0, -0.1]])]
        target = [torch.tensor([[1, 0, 1], [0, 1, 1], [1, 0, 0]]), torch.tensor([[0, 1, 1], [1, 0, 0]])]
        out = []
        for average in ("micro", "macro", "weighted", "none"):
            for name in ("Accuracy", "Precision", "Recall", "F1Score"):
                m = getattr(torchmetrics, name)(task="multilabel", num_labels=3, average=average)
                out.append([name, average, [m(p, t) for p, t in zip(preds, target)], m.compute()])
        ignored = torchmetrics.F1Score(task="multilabel", num_labels=3, threshold=0.3, average="macro", ignore_index=-1)
        ignored.update(preds[0], torch.tensor([[1, -1, 1], [0, 1, -1], [1, 0, 0]]))
        return out + [ignored.compute()]

    check("metrics_multilabel", metrics_multilabel)

    def metrics_samplewise():
        import torchmetrics

        counter = [0]

        def scores(*shape):  # deterministic, varied values (no generator needed)
            counter[0] += 1
            n = 1
            for s in shape:
                n *= s
            return (torch.arange(n).float() * (0.7 + counter[0]) + counter[0]).sin().reshape(*shape) * 3

        def labels(k, *shape):
            return (scores(*shape) * 7).abs().long() % k

        out = []
        # Binary (N, 2, 3), logits, an ignored target; two updates (the per-sample lists grow).
        for name in ("Accuracy", "Precision", "Recall", "F1Score"):
            m = getattr(torchmetrics, name)(task="binary", multidim_average="samplewise", ignore_index=-1)
            for n in (3, 1):
                target = labels(2, n, 2, 3)
                target[0, 0, 0] = -1
                out.append([name, m(scores(n, 2, 3), target)])
            out.append(m.compute())
        # Multiclass scores (N, C, L), top 1 and top 2, every average, an ignored class inside
        # and a label outside.
        for average in ("micro", "macro", "weighted", "none"):
            for top_k, ignore in ((1, None), (2, None), (1, 2), (1, -1)):
                for name in ("Accuracy", "Precision", "Recall", "F1Score"):
                    m = getattr(torchmetrics, name)(task="multiclass", num_classes=4, top_k=top_k, average=average, multidim_average="samplewise", ignore_index=ignore)
                    target = labels(4, 3, 5)
                    if ignore == -1:
                        target[1, 2] = -1
                    m.update(scores(3, 4, 5), target)
                    out.append([name, average, top_k, ignore, m.compute()])
        # Multiclass labels (N, L).
        m = torchmetrics.Accuracy(task="multiclass", num_classes=3, average="macro", multidim_average="samplewise")
        m.update(labels(3, 4, 6), labels(3, 4, 6))
        out.append(m.compute())
        # Multilabel (N, labels, L).
        for average in ("micro", "macro", "weighted", "none"):
            for name in ("Accuracy", "Precision", "Recall", "F1Score"):
                m = getattr(torchmetrics, name)(task="multilabel", num_labels=3, average=average, multidim_average="samplewise")
                out.append([name, average, m(scores(2, 3, 4).sigmoid(), labels(2, 2, 3, 4)), m.compute()])
        try:
            torchmetrics.Accuracy(task="binary", multidim_average="samplewise").update(scores(4), labels(2, 4))
        except ValueError as e:
            out.append(str(e))
        return out

    check("metrics_samplewise", metrics_samplewise)

    def metrics_auroc():
        import torchmetrics
        from torchmetrics.classification import BinaryAUROC, MulticlassAUROC, MultilabelAUROC

        counter = [0]

        def scores(*shape, ties=False):  # deterministic, varied values (no generator needed)
            counter[0] += 1
            n = 1
            for s in shape:
                n *= s
            v = (torch.arange(n).float() * (0.7 + counter[0]) + counter[0]).sin().reshape(*shape) * 3
            return (v * 2).round() / 2 if ties else v

        def labels(k, *shape):
            return (scores(*shape) * 7).abs().long() % k

        out = []
        # Binary: logits with ties, probabilities, an ignored target, max_fpr; forward then compute.
        for kw in ({}, {"max_fpr": 0.5}, {"ignore_index": -1}):
            m = BinaryAUROC(**kw)
            for n, probs in ((12, False), (9, True)):
                preds = scores(n, ties=True)
                target = labels(2, n)
                target[0] = -1 if kw.get("ignore_index") else target[0]
                out.append(m(preds.sigmoid() if probs else preds, target))
            out.append(m.compute())
        # Multiclass (N, C) and (N, C, L) logits, every average, a class absent from the targets.
        for average in ("macro", "weighted", "none"):
            m = torchmetrics.AUROC(task="multiclass", num_classes=4, average=average)
            out.append(m(scores(10, 4), labels(3, 10)))
            out.append(m(scores(3, 4, 2, ties=True), labels(4, 3, 2)))
            out.append(m.compute())
        ignored = MulticlassAUROC(num_classes=3, ignore_index=-1)
        target = labels(3, 8)
        target[2] = -1
        out.append(ignored(scores(8, 3).softmax(1), target))
        # Multilabel, every average, an ignored label entry.
        for average in ("micro", "macro", "weighted", "none"):
            m = MultilabelAUROC(num_labels=3, average=average, ignore_index=-1)
            target = labels(2, 9, 3)
            target[1, 2] = -1
            out.append(m(scores(9, 3, ties=True), target))
            out.append(m(scores(5, 3).sigmoid(), labels(2, 5, 3)))
            out.append(m.compute())
        return out

    check("metrics_auroc", metrics_auroc)

    def metrics_auroc_validation():
        # torchmetrics' input checks (validate_args=True), each error's type and message; then
        # validate_args=False takes what it would refuse.
        from torchmetrics.classification import BinaryAUROC, MulticlassAUROC, MultilabelAUROC

        p = torch.tensor([0.1, 0.8, 0.4, 0.6])
        cases = [
            lambda: BinaryAUROC().update(p, torch.tensor([0, 1, 0])),
            lambda: BinaryAUROC().update(p, torch.tensor([0.0, 1.0, 0.0, 1.0])),
            lambda: BinaryAUROC().update(torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 1])),
            lambda: BinaryAUROC().update(p, torch.tensor([0, 2, 0, 1])),
            lambda: BinaryAUROC(ignore_index=-1).update(p, torch.tensor([0, 2, -1, 1])),
            lambda: MulticlassAUROC(num_classes=3).update(torch.arange(12.0).view(4, 3) / 12, torch.tensor([[0, 1, 2, 1]])),
            lambda: MulticlassAUROC(num_classes=3).update(torch.arange(12.0).view(4, 3) / 12, torch.tensor([0.0, 1.0, 2.0, 1.0])),
            lambda: MulticlassAUROC(num_classes=3).update(torch.tensor([[0, 1, 0]] * 4), torch.tensor([0, 1, 2, 1])),
            lambda: MulticlassAUROC(num_classes=3).update(torch.arange(8.0).view(4, 2) / 8, torch.tensor([0, 1, 0, 1])),
            lambda: MulticlassAUROC(num_classes=3).update(torch.arange(12.0).view(4, 3) / 12, torch.tensor([0, 1, 2])),
            lambda: MulticlassAUROC(num_classes=3).update(torch.arange(12.0).view(4, 3) / 12, torch.tensor([0, 1, 2, 5])),
            lambda: MultilabelAUROC(num_labels=3).update(torch.arange(8.0).view(4, 2) / 8, torch.tensor([[0, 1]] * 4)),
            lambda: MultilabelAUROC(num_labels=2).update(torch.arange(8.0).view(4, 2) / 8, torch.tensor([[0, 3]] * 4)),
        ]
        out = []
        for case in cases:
            try:
                case()
                out.append("accepted")
            except (ValueError, RuntimeError) as e:
                out.append([type(e).__name__, str(e)])
        m = BinaryAUROC(validate_args=False)
        m.update(torch.tensor([0.2, 0.9, 0.4]), torch.tensor([0.0, 1.0, 1.0]))
        out.append(m.compute())
        return out

    check("metrics_auroc_validation", metrics_auroc_validation)

    def unique():
        x = torch.tensor([[3, 1, 3], [2, 1, 3], [3, 1, 3]])
        return [
            torch.unique(x),
            x.unique(return_inverse=True),
            x.unique(return_counts=True),
            torch.unique(x, sorted=True, return_inverse=True, return_counts=True),
            torch.unique(x, dim=0, return_inverse=True, return_counts=True),
            x.float().unique(dim=1),
        ]

    check("unique", unique)

    def generators():
        from torch.utils.data import random_split

        torch.manual_seed(11)
        g = torch.Generator().manual_seed(7)
        drawn = [torch.randn(3, generator=g), torch.rand(2, generator=g), torch.randint(0, 10, (4,), generator=g), torch.randperm(5, generator=g)]
        saved = g.get_state()
        again = [torch.randn(2, generator=g)]
        g.set_state(saved)
        again.append(torch.randn(2, generator=g))
        run = torch.rand(2)  # the run's generator, untouched by g's draws
        state = torch.get_rng_state()
        first = torch.rand(3)
        torch.set_rng_state(state)
        fresh = torch.Generator()
        init = nn.init.normal_(torch.empty(4), generator=torch.Generator().manual_seed(3))
        kaiming = nn.init.kaiming_uniform_(torch.empty(2, 3), generator=torch.Generator().manual_seed(3))
        split = torch.Generator().manual_seed(42)
        parts = [list(s.indices) for s in random_split(range(10), [0.6, 0.4], generator=split)]
        parts += [list(s.indices) for s in random_split(range(6), [3, 3], generator=split)]
        return [drawn, again, run, first, torch.rand(3), state.shape, fresh.initial_seed(), torch.rand(2, generator=fresh), g.initial_seed(), init, kaiming, parts, torch.initial_seed()]

    check("generators", generators)

    def samplers():
        from torch.utils.data import RandomSampler, SubsetRandomSampler, WeightedRandomSampler

        g = torch.Generator().manual_seed(5)
        data = range(10)
        torch.manual_seed(3)
        return [
            list(RandomSampler(data, generator=g)),
            list(RandomSampler(data, replacement=True, num_samples=40, generator=g)),
            list(RandomSampler(data, num_samples=25, generator=g)),
            list(RandomSampler(data, replacement=True, num_samples=7)),
            list(SubsetRandomSampler([3, 5, 7, 9], generator=g)),
            list(SubsetRandomSampler([3, 5, 7, 9])),
            list(WeightedRandomSampler([0.1, 0.5, 2.0, 1.0], 6, generator=g)),
            list(WeightedRandomSampler([0.1, 0.5, 2.0, 1.0], 3, replacement=False, generator=g)),
            torch.rand(2),
        ]

    check("samplers", samplers)

    def settings():
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True)
        model = nn.Linear(2, 2)
        read = [torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
                torch.are_deterministic_algorithms_enabled(), torch.backends.mps.is_available(), torch.backends.cuda.matmul.allow_tf32]
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.benchmark = torch.backends.cudnn.deterministic = False
        torch.use_deterministic_algorithms(False)
        torch.set_float32_matmul_precision("low")  # torch warns and leaves it
        return read + [model(torch.ones(1, 2)).shape, torch.get_float32_matmul_precision()]

    check("settings", settings)

    def grads(module, loss):
        loss.backward()
        return [[n, p.grad.sum().item(), p.grad.abs().max().item()] for n, p in module.named_parameters()]

    def recurrent(kind, **kw):
        m = getattr(nn, kind)(3, 4, **kw)
        x = torch.randn(5, 2, 3)
        out, h = m(x)
        hs = list(h) if isinstance(h, tuple) else [h]
        unbatched = m(x[:, 0])[0] if not kw.get("batch_first") else m(x[0])[0]
        loss = out.pow(2).sum() + sum(t.sum() for t in hs)
        return [[n, list(p.shape), p.sum().item()] for n, p in m.named_parameters()], out, hs, unbatched.shape, grads(m, loss)

    check("lstm", lambda: recurrent("LSTM", num_layers=2))
    check("lstm_bidirectional_batch_first", lambda: recurrent("LSTM", bidirectional=True, batch_first=True))
    check("lstm_proj", lambda: recurrent("LSTM", proj_size=2))
    check("gru", lambda: recurrent("GRU", num_layers=2, bias=False))
    check("rnn_relu", lambda: recurrent("RNN", nonlinearity="relu", bidirectional=True))

    def cells():
        out = []
        for cell in (nn.RNNCell(3, 4), nn.RNNCell(3, 4, bias=False, nonlinearity="relu"), nn.LSTMCell(3, 4), nn.GRUCell(3, 4)):
            x = torch.randn(2, 3)
            h = cell(x)
            one = cell(x[0], tuple(t[0] for t in h) if isinstance(h, tuple) else h[0])
            hs = list(h) if isinstance(h, tuple) else [h]
            ones = list(one) if isinstance(one, tuple) else [one]
            loss = sum(t.pow(2).sum() for t in hs + ones)
            out.append([[[n, p] for n, p in cell.named_parameters()], hs, ones, grads(cell, loss)])
        return out

    check("rnn_cells", cells)

    def more_layers():
        out = []
        for m, x in [
            (nn.PReLU(3, init=0.1), torch.randn(2, 3, 4)),
            (nn.InstanceNorm1d(3, affine=True), torch.randn(2, 3, 5)),
            (nn.InstanceNorm2d(2, track_running_stats=True), torch.randn(2, 2, 3, 3)),
            (nn.InstanceNorm1d(3), torch.randn(3, 4)),
            (nn.ZeroPad2d((1, 0, 2, 1)), torch.randn(1, 2, 3, 3)),
            (nn.ConstantPad1d(1, 3.5), torch.randn(1, 2, 3)),
            (nn.ReflectionPad1d(2), torch.randn(1, 2, 5)),
            (nn.ReplicationPad2d(1), torch.randn(1, 1, 2, 3)),
            (nn.CircularPad1d(1), torch.randn(1, 2, 4)),
            (nn.Threshold(0.1, 20.0), torch.randn(2, 3)),
            (nn.Hardshrink(0.3), torch.randn(2, 3)),
            (nn.Softshrink(), torch.randn(2, 3)),
            (nn.Softmax2d(), torch.randn(2, 3, 2, 2)),
            (nn.PixelUnshuffle(2), torch.randn(1, 1, 4, 4)),
            (nn.UpsamplingNearest2d(scale_factor=2), torch.randn(1, 1, 2, 2)),
            (nn.UpsamplingBilinear2d(size=(3, 5)), torch.randn(1, 1, 2, 2)),
            (nn.AdaptiveMaxPool1d(2), torch.randn(1, 2, 5)),
            (nn.MaxPool3d(2), torch.randn(1, 1, 4, 4, 4)),
            (nn.AvgPool3d(2, stride=1), torch.randn(1, 1, 3, 3, 3)),
            (nn.AdaptiveAvgPool3d((1, 2, None)), torch.randn(1, 2, 3, 4, 5)),
            (nn.LocalResponseNorm(2), torch.randn(2, 4, 3)),
            (nn.LocalResponseNorm(3), torch.randn(1, 4, 2, 2)),
        ]:
            x.requires_grad_()
            y = m(x)
            y.pow(2).sum().backward()
            out.append([type(m).__name__, y, x.grad, [[n, p, p.grad] for n, p in m.named_parameters()],
                        list(m.state_dict().keys())])
        a, b = torch.randn(2, 3, requires_grad=True), torch.randn(2, 4)
        bi = nn.Bilinear(3, 4, 2)
        y = bi(a, b)
        y.sum().backward()
        out.append(["Bilinear", bi.weight, bi.bias, y, a.grad, bi.weight.grad])
        return out

    check("more_layers", more_layers)

    def more_losses():
        a, b = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
        y = torch.tensor([1.0, -1.0, 1.0, -1.0])
        cls = torch.tensor([0, 2, 1, 2])
        multi = torch.tensor([[0, 1, -1], [2, -1, 0], [1, 0, 2], [-1, 0, 0]])
        labels = (torch.randn(4, 3) > 0).float()
        losses = [
            nn.MarginRankingLoss(margin=0.1)(a[:, 0], b[:, 0], y),
            nn.CosineEmbeddingLoss(margin=0.2)(a, b, y),
            nn.HingeEmbeddingLoss(margin=0.5, reduction="sum")(a, b.sign()),
            nn.SoftMarginLoss()(a, b.sign()),
            nn.MultiLabelSoftMarginLoss(weight=torch.tensor([1.0, 2.0, 0.5]))(a, labels),
            nn.MultiLabelMarginLoss()(a, multi),
            nn.MultiMarginLoss(p=2, margin=0.5)(a, cls),
            nn.TripletMarginLoss(margin=0.3, swap=True)(a, b, b.flip(0)),
            nn.PoissonNLLLoss()(a, b.abs()),
            nn.PoissonNLLLoss(log_input=False, full=True)(a.abs() + 0.1, b.abs() * 3),
            nn.GaussianNLLLoss()(a, b, torch.ones(4, 1) * 0.5),
            nn.GaussianNLLLoss(full=True, reduction="none")(a, b, torch.rand(4, 3) + 0.1),
            F.local_response_norm(a.view(1, 4, 3), 2).sum(),
        ]
        sum(loss.sum() for loss in losses).backward()
        return [losses, a.grad]

    check("more_losses", more_losses)

    def more_optimizers():
        out = []
        for make in (
            lambda ps: torch.optim.Adamax(ps, lr=0.01, weight_decay=0.1),
            lambda ps: torch.optim.Adadelta(ps, lr=0.5, rho=0.8, weight_decay=0.01),
            lambda ps: torch.optim.NAdam(ps, lr=0.01, weight_decay=0.05),
            lambda ps: torch.optim.NAdam(ps, lr=0.01, weight_decay=0.05, decoupled_weight_decay=True, momentum_decay=0.01),
            lambda ps: torch.optim.RAdam(ps, lr=0.01, weight_decay=0.05),
            lambda ps: torch.optim.RAdam([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.02}], lr=0.01, weight_decay=0.1,
                                         decoupled_weight_decay=True),
            lambda ps: torch.optim.Adamax(ps, lr=0.01, maximize=True),
        ):
            torch.manual_seed(5)
            w, b = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(4))
            x, y = torch.randn(8, 3), torch.randn(8, 4)
            o = make([w, b])
            losses = []
            for _ in range(100):
                o.zero_grad()
                loss = ((x @ w + b - y) ** 2).mean()
                loss.backward()
                o.step()
                losses.append(loss.item())
            out.append([losses[::10], w, b, sorted(o.state[w].keys()), o.state[w]["step"]])
        return out

    check("more_optimizers", more_optimizers)

    def metric_collection():
        import torchmetrics
        from torchmetrics import MetricCollection
        from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

        def rows(d):
            return [[k, v] for k, v in sorted(d.items())]

        train = MetricCollection([MulticlassAccuracy(num_classes=3), MulticlassF1Score(num_classes=3, average="macro")],
                                 prefix="train_")
        val = train.clone(prefix="val_")
        named = MetricCollection({"prec": torchmetrics.Precision(task="multiclass", num_classes=3, average="macro"),
                                  "acc": torchmetrics.Accuracy(task="multiclass", num_classes=3)}, postfix="/x")
        torch.manual_seed(3)
        steps = []
        for _ in range(3):
            preds, target = torch.randn(6, 3).softmax(-1), torch.randint(0, 3, (6,))
            steps.append(rows(train(preds, target)))
            val.update(preds, target)
            named.update(preds, target)
        out = [list(train.keys()), list(train.keys(keep_base=True)), list(named.keys()), steps, rows(train.compute()),
               rows(val.compute()), rows(named.compute()), type(val["val_MulticlassAccuracy"]).__name__]
        val.reset()
        val.update(preds, target)
        return out + [rows(val.compute())]

    check("metric_collection", metric_collection)

    def attention(**kw):
        m = nn.MultiheadAttention(8, 2, **kw)
        x = torch.randn(2, 5, 8) if kw.get("batch_first") else torch.randn(5, 2, 8)
        mem = torch.randn(2, 3, 8) if kw.get("batch_first") else torch.randn(3, 2, 8)
        causal = nn.Transformer.generate_square_subsequent_mask(5)
        pad = torch.tensor([[False, False, True], [False, False, False]])
        a, w = m(x, x, x, attn_mask=causal)
        b, _ = m(x, mem, mem, key_padding_mask=pad, need_weights=False)
        c, wc = m(x, mem, mem, average_attn_weights=False)
        return [a, w, b, c.sum().item(), wc.shape, grads(m, a.sum() + b.pow(2).sum())]

    check("mha", lambda: attention())
    check("mha_batch_first", lambda: attention(batch_first=True, bias=False))

    def encoder(norm_first):
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True, norm_first=norm_first, activation="gelu")
        enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
        x = torch.randn(3, 6, 8)
        mask = nn.Transformer.generate_square_subsequent_mask(6)
        pad = torch.zeros(3, 6, dtype=torch.bool)
        pad[0, 4:] = True
        y = enc(x, mask=mask)
        z = enc(x, src_key_padding_mask=pad)
        names = [n for n, _ in enc.named_parameters()]
        return [names, y, z.sum().item(), grads(enc, y.pow(2).mean() + z.mean())]

    check("transformer_encoder", lambda: encoder(False))
    check("transformer_encoder_norm_first", lambda: encoder(True))

    def decoder(norm_first):
        layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True, norm_first=norm_first)
        dec = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(8))
        tgt, mem = torch.randn(3, 5, 8), torch.randn(3, 4, 8)
        mask = nn.Transformer.generate_square_subsequent_mask(5)
        pad = torch.zeros(3, 4, dtype=torch.bool)
        pad[1, 3:] = True
        y = dec(tgt, mem, tgt_mask=mask)
        z = dec(tgt, mem, memory_key_padding_mask=pad, tgt_is_causal=False)
        names = [n for n, _ in dec.named_parameters()]
        return [names, y, z.sum().item(), grads(dec, y.pow(2).mean() + z.mean())]

    check("transformer_decoder", lambda: decoder(False))
    check("transformer_decoder_norm_first", lambda: decoder(True))

    def transformer():
        model = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=16, dropout=0.0)
        src, tgt = torch.randn(4, 2, 8), torch.randn(3, 2, 8)
        out = model(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(3))
        names = [n for n, _ in model.named_parameters()]
        return [names, out, grads(model, out.pow(2).sum())]

    check("transformer", transformer)

    def finalizers():
        # weakref.finalize as Python has it (lthost's SDK gives tensor handles a cheaper
        # finalizer and must leave every other use alone): fires once, on collection or call,
        # not after detach; a tensor kept alive by one keeps its value.
        import gc
        import weakref

        class Obj:
            pass

        fired = []
        a, b, c = Obj(), Obj(), Obj()
        fa = weakref.finalize(a, fired.append, "a")
        fb = weakref.finalize(b, fired.append, "b")
        weakref.finalize(c, fired.append, "c").detach()
        keep = torch.arange(4.0) * 2
        kb = weakref.finalize(b, lambda t: fired.append(t.sum().item()), keep)
        alive = [fa.alive, fb.alive, kb.alive]
        del a, c
        gc.collect()
        fb()
        fb()
        del b
        gc.collect()
        return [alive, fired, fa.alive, fb.alive, isinstance(fa, weakref.finalize)]

    check("weakref_finalize", finalizers)

    def seeded():
        # torch.manual_seed reseeds the generator ops draw from, as in torch.
        torch.manual_seed(7)
        a, b = torch.rand(3), torch.randn(2)
        torch.manual_seed(7)
        return [a, b, bool((torch.rand(3) == a).all().item()), torch.randint(0, 100, (4,))]

    check("manual_seed", seeded)

    def overload_cache():
        # lthost's SDK remembers the overload torch's rules chose for the arguments' types
        # (a list's item types too) and reuses it: the same op called again with other types,
        # and with a 0-dim tensor where a number goes (a value, which is never remembered).
        a = torch.arange(6.0).view(2, 3)
        t0, t1 = torch.tensor(2.0), torch.tensor([0.5, 1.0, 3.0])
        out = [a + o for o in (1, 1.5, True, a, t0, 2, a.long(), t0, 1)]
        out += [a.view(6), a.view(3, 2), a.view([6]), a.view(-1), a.view((3, 2)), a.view(2, -1)]
        out += [a.sum(1), a.sum([0, 1]), a.sum((1,), keepdim=True), a.sum(1), a.sum(dim=0)]
        out += [torch.where(a > 2, a, 0.0), torch.where(a > 2, a, t0), torch.where(a > 2, a, 0.0)]
        out += [a.pow(2), a.pow(t0), a.pow(2.5), a.long().pow(2), 2 ** a]
        out += [a.clamp(t1, t1 + 1), a.clamp(0, 4), a.clamp(min=1.0), a.clamp(t0, t1), a.clamp(0, 4)]
        out += [a.mul(t0), a.mul(3), a.mul(t1), a.div(t0), a.div(2), a.div(2, rounding_mode="floor")]
        out += [a.expand(2, 2, 3), a.permute(1, 0), a.permute([1, 0]), a.transpose(0, 1), a.unsqueeze(0).shape]
        out += [a.new_zeros(2), a.masked_fill(a > 2, -1.0), a.masked_fill(a > 2, t0), a.masked_fill(a > 3, -1)]
        out += [a.view([3, 2]) for _ in range(3)] + [a.sum([1], keepdim=True) for _ in range(3)]
        out += [a.sum(1, keepdim=True) for _ in range(3)] + [a.mean(-1, keepdim=True) for _ in range(3)]
        return out

    check("overload_cache", overload_cache)

    def autocast():
        # torch.autocast in plugin code: ops on autocast's lists run in its dtype (matmul,
        # linear), the others keep theirs (add) or run in float32 (cross_entropy); scopes nest,
        # `enabled=False` inside turns it off, the state is put back after; the decorator form;
        # an unsupported CPU dtype disables it (torch warns).
        a, b = torch.ones(2, 3), torch.ones(3, 2)
        out = [torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), torch.is_autocast_cache_enabled()]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mm = a @ b
            out += [mm.dtype, (a + a).dtype, torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")]
            with torch.autocast("cpu", enabled=False):
                out += [(a @ b).dtype, torch.is_autocast_enabled("cpu")]
            out += [F.linear(a, b.t()).dtype, F.cross_entropy(mm, torch.tensor([0, 1])).dtype, (a @ b).dtype]
            with torch.autocast("cpu", dtype=torch.float16):
                out += [(a @ b).dtype, torch.get_autocast_dtype("cpu")]
        out += [torch.is_autocast_enabled("cpu"), (a @ b).dtype, torch.get_autocast_dtype("cpu")]
        with torch.autocast(device_type="cpu", dtype=torch.float32):
            out += [(a @ b).dtype, torch.is_autocast_enabled("cpu")]

        @torch.autocast("cpu", dtype=torch.bfloat16)
        def f(x):
            return x @ x.t()

        out += [f(a).dtype, torch.get_default_dtype(), torch.tensor([1.5]).dtype]
        return out

    check("autocast", autocast)

    def reduced_precision_numbers():
        # A Python number with a bfloat16/float16 tensor, as torch's bindings pass it: a wrapped
        # number the kernel reads in float (bfloat16 0.95 would be 0.94921875), in place too.
        out = []
        for dt in (torch.bfloat16, torch.float16):
            v = torch.linspace(0.5, 3.0, 7).to(dt)
            a, b, d, f, g = v.clone(), v.clone(), v.clone(), v.clone(), v.clone()
            a.mul_(0.95)
            b *= 0.95
            d.add_(0.013)
            f.div_(0.95)
            g.sub_(0.013, alpha=3)
            out += [a, b, v * 0.95, 0.95 * v, d, v + 0.013, f, v / 0.95, g, v.lerp(v * 2, 0.1), v.clamp(0.7, 2.9)]
        return out

    check("reduced_precision_numbers", reduced_precision_numbers)

    class Compiled(nn.Module):
        # nanoGPT's habit inside a LightningModule: a compiled submodule (`backend="eager"`
        # keeps the reference free of a C++ toolchain; lthost ignores the backend).
        def __init__(self):
            super().__init__()
            self.net = torch.compile(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), backend="eager")
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            return self.head(self.net(x))

    def compiled_module():
        # torch.compile(module) wraps it: names and state_dict keys carry `_orig_mod.`, the
        # wrapper's mode is the module's, attributes it does not own are the module's; a
        # state_dict with those keys loads back; Module.compile() keeps the names.
        torch.manual_seed(3)
        m = Compiled()
        x = torch.linspace(-1, 1, 6).view(3, 2)
        out = [list(m.state_dict()), [n for n, _ in m.named_modules()], [n for n, _ in m.named_parameters()]]
        out += [type(m.net).__name__, type(m.net._orig_mod).__name__, len(m.net), m(x), m.net(x)]
        out += [isinstance(m.net, torch._dynamo.eval_frame.OptimizedModule), isinstance(m.net, nn.Module)]
        m.eval()
        out += [m.net.training, m.net._orig_mod.training, m.net._orig_mod[0].training]
        m.net.train()
        out += [m.training, m.net.training, m.net._orig_mod[1].training]
        m.net.tag = "kept"
        out += [m.net._orig_mod.tag, "tag" in m.net.__dict__, list(m.net._orig_mod[0].weight.shape)]
        other = Compiled()
        other.load_state_dict(m.state_dict())
        out += [other(x), sum(p.numel() for p in m.parameters())]
        lin = nn.Linear(2, 2)
        lin.compile()
        out += [list(lin.state_dict()), type(lin).__name__]
        c = torch.compile(nn.Linear(2, 2), backend="eager", fullgraph=True)
        out += [list(c.state_dict()), list(c.weight.shape), c.in_features]
        return out

    check("compiled_module", compiled_module)
    # The wrapper has no `[]` of its own (Python looks special methods up on the type).
    check("compiled_module_index", lambda: Compiled().net[0])

    def compiled_functions():
        # torch.compile on a function, plain and as a decorator with arguments: the function.
        def f(x):
            return x * 2

        g = torch.compile(f, backend="eager")

        @torch.compile(backend="eager", dynamic=False)
        def h(x):
            return x + 1

        x = torch.arange(3.0)
        return [g(x), h(x), torch.compile(backend="eager")(f)(x)]

    check("compiled_functions", compiled_functions)

    def lightning_module_api():
        # Lightning's LightningModule.freeze/unfreeze, and lightning.pytorch.utilities.grad_norm.
        import lightning.pytorch as pl
        from lightning.pytorch.utilities import grad_norm

        class Net(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(2, 3)
                self.drop = nn.Dropout(0.5)

        m = Net()
        m.freeze()
        frozen = [p.requires_grad for p in m.parameters()] + [m.training, m.drop.training]
        m.unfreeze()
        thawed = [p.requires_grad for p in m.parameters()] + [m.training, m.drop.training]
        m.a.weight.grad = torch.arange(6.0).view(3, 2)
        norms = [[k, v] for k, v in grad_norm(m, norm_type=2).items()]
        m.a.bias.grad = torch.tensor([-4.0, 1.0, 2.0])
        inf = [[k, v] for k, v in grad_norm(m, "inf", group_separator=".").items()]
        return [frozen, thawed, norms, inf]

    check("lightning_module_api", lightning_module_api)
    return out
