"""Reference values for lthost's engine from PyTorch itself: the initial weights of every
torch.nn layer lthost offers (same seed, same construction order), a few forward passes,
and the parameters after several steps of each torch.optim optimizer.

    .venv/bin/python tests/reference/engine_reference.py tests/reference/engine.json

host/tests/engine.rs rebuilds the same layers and optimizers with the tch engine and
compares.
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)


def flat(t):
    return {"shape": list(t.shape), "values": t.detach().double().flatten().tolist()}


def layers():
    torch.manual_seed(0)
    made = {
        "linear": nn.Linear(5, 3),
        "linear_nobias": nn.Linear(4, 2, bias=False),
        "conv": nn.Conv2d(2, 4, (3, 3), stride=1, padding=1),
        "bn": nn.BatchNorm1d(3),
        "ln": nn.LayerNorm([4]),
        "emb": nn.Embedding(6, 3),
        "lstm": nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True),
        "mha": nn.MultiheadAttention(8, 2, batch_first=True),
    }
    state = {}
    for prefix, m in made.items():
        for name, t in m.state_dict().items():
            state[f"{prefix}.{name}"] = flat(t)
    # Forward passes, in eval mode, on inputs drawn after construction.
    for m in made.values():
        m.eval()
    x_conv = torch.randn(2, 2, 5, 5)
    x_ln = torch.randn(3, 4)
    idx = torch.tensor([[0, 5, 2], [1, 1, 4]])
    x_seq = torch.randn(2, 7, 3)
    q = torch.randn(2, 5, 8)
    with torch.no_grad():
        out_lstm, (h, c) = made["lstm"](x_seq)
        mha_out, mha_w = made["mha"](q, q, q, need_weights=True)
        mha_out_fast, _ = made["mha"](q, q, q, need_weights=False)
        forward = {
            "conv": flat(made["conv"](x_conv)),
            "ln": flat(made["ln"](x_ln)),
            "emb": flat(made["emb"](idx)),
            "lstm": flat(out_lstm),
            "lstm_h": flat(h),
            "mha": flat(mha_out),
            "mha_weights": flat(mha_w),
            "mha_fast": flat(mha_out_fast),
        }
    inputs = {"conv": flat(x_conv), "ln": flat(x_ln), "emb": flat(idx), "lstm": flat(x_seq), "mha": flat(q)}
    return state, forward, inputs, made


def layer_grads(made):
    """Gradients through every layer (the modules `layers` made, in train mode unless
    said): inputs drawn here, the loss `(out * g).sum()` with a fixed random `g` per output,
    the input's and every parameter's gradient; BatchNorm's running statistics after a
    training forward, then an eval forward's gradients; LSTM from an initial state; MHA with
    a causal boolean mask; BatchNorm2d in training (and its running statistics); max- and
    average-pooling with stride and padding; dropout, whose mask is drawn right after
    `torch.manual_seed(7)`."""
    torch.manual_seed(4)
    out = {}

    def record(name, module, xs, ys):
        gs = [torch.randn_like(y) for y in ys]
        for p in module.parameters():
            p.grad = None
        sum((y * g).sum() for y, g in zip(ys, gs)).backward()
        out[name] = {
            "inputs": [flat(x) for x in xs],
            "g": [flat(g) for g in gs],
            "out": [flat(y) for y in ys],
            "input_grads": [flat(x.grad) if x.grad is not None else None for x in xs],
            "param_grads": {n: flat(p.grad) for n, p in module.named_parameters()},
        }

    def leaf(*shape):
        return torch.randn(*shape).requires_grad_(True)

    for name in ["linear", "linear_nobias", "conv", "ln"]:
        m = made[name].train()
        shape = {"linear": (4, 5), "linear_nobias": (3, 4), "conv": (2, 2, 5, 5), "ln": (3, 4)}[name]
        x = leaf(*shape)
        record(name, m, [x], [m(x)])
    bn = made["bn"].train()
    x = leaf(6, 3)
    record("bn_train", bn, [x], [bn(x)])
    out["bn_train"]["running"] = {"mean": flat(bn.running_mean), "var": flat(bn.running_var)}
    bn.eval()
    x = leaf(6, 3)
    record("bn_eval", bn, [x], [bn(x)])
    emb = made["emb"].train()
    idx = torch.tensor([[0, 5, 2], [1, 1, 4]])
    record("emb", emb, [idx], [emb(idx)])
    lstm = made["lstm"].train()
    x, h0, c0 = leaf(2, 7, 3), leaf(4, 2, 4), leaf(4, 2, 4)
    y, (h, c) = lstm(x, (h0, c0))
    record("lstm", lstm, [x, h0, c0], [y, h, c])
    mha = made["mha"].train()
    q = leaf(2, 5, 8)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    y, _ = mha(q, q, q, attn_mask=mask, need_weights=True)
    record("mha", mha, [q], [y])
    out["mha"]["mask"] = flat(mask.to(torch.uint8))
    bn2d = nn.BatchNorm2d(3).train()
    x = leaf(2, 3, 4, 4)
    record("bn2d_train", bn2d, [x], [bn2d(x)])
    out["bn2d_train"]["running"] = {"mean": flat(bn2d.running_mean), "var": flat(bn2d.running_var)}
    x = leaf(2, 3, 7, 7)
    record("max_pool2d", nn.Module(), [x], [F.max_pool2d(x, (3, 2), (2, 2), (1, 1))])
    x = leaf(2, 3, 7, 7)
    record("avg_pool2d", nn.Module(), [x], [F.avg_pool2d(x, (3, 3), (2, 1), (1, 0))])
    x = leaf(4, 50)
    torch.manual_seed(7)
    record("dropout", nn.Module(), [x], [F.dropout(x, 0.3, training=True)])
    return out


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adam_amsgrad_wd": lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01),
    "rmsprop_centered_momentum_wd": lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.5, centered=True),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
    # Each option alone as well (the combinations above cannot tell which one is wrong).
    "sgd_weight_decay": lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.1),
    "sgd_momentum_dampening": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.5),
    "adam_betas_eps": lambda p: torch.optim.Adam(p, lr=0.001, betas=(0.5, 0.9), eps=1e-5),
    "adam_amsgrad": lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw_amsgrad": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05, amsgrad=True),
    "rmsprop_centered": lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True),
    "rmsprop_momentum": lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.9),
    "adagrad_lr_decay": lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.05),
    "adagrad_initial_accumulator": lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.5, eps=1e-6),
}
# Parameter groups with their own lr and weight decay, for every optimizer: group a at
# lr 0.02, group b at lr 0.005 with weight decay 0.1; the optimizer's own lr is 0.5.
GROUPED = {
    "sgd": lambda g: torch.optim.SGD(g, lr=0.5, momentum=0.9),
    "adam": lambda g: torch.optim.Adam(g, lr=0.5),
    "adamw": lambda g: torch.optim.AdamW(g, lr=0.5, weight_decay=0.01),
    "rmsprop": lambda g: torch.optim.RMSprop(g, lr=0.5),
    "adagrad": lambda g: torch.optim.Adagrad(g, lr=0.5),
}
STEPS = 5


def run_optimizers(init, grads):
    """Each OPTIMIZERS entry stepped over `grads` from `init`: its final parameter."""
    result = {}
    for name, make in OPTIMIZERS.items():
        p = nn.Parameter(init.clone())
        opt = make([p])
        for g in grads:
            p.grad = g.clone()
            opt.step()
        result[name] = flat(p)
    return result


def optimizers():
    torch.manual_seed(1)
    init = torch.randn(3, 4)
    grads = [torch.randn(3, 4) for _ in range(STEPS)]
    out = {"init": flat(init), "grads": [flat(g) for g in grads], "steps": STEPS, "result": run_optimizers(init, grads)}
    # Parameter groups: a at lr 0.1, b at lr 0.01 with weight decay, SGD momentum 0.9.
    a, b = nn.Parameter(init.clone()), nn.Parameter(init.clone() * 2)
    opt = torch.optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01, "weight_decay": 0.1}], lr=0.5, momentum=0.9)
    for g in grads:
        a.grad, b.grad = g.clone(), g.clone()
        opt.step()
    out["groups"] = {"a": flat(a), "b": flat(b)}
    # Gradient clipping on the first two gradients, as two parameters' grads.
    for name, clip in {"norm": lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.5), "value": lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.1)}.items():
        ps = [nn.Parameter(torch.zeros(3, 4)) for _ in range(2)]
        for p, g in zip(ps, grads[:2]):
            p.grad = g.clone()
        clip(ps)
        out[f"clip_{name}"] = [flat(p.grad) for p in ps]
    return out


LONG_STEPS = 100


def optimizers_long():
    """Every optimizer configuration over LONG_STEPS steps of small gradients (1e-4 scale,
    where eps enters the update shows), and every optimizer with two parameter groups, for a
    bit-for-bit comparison."""
    torch.manual_seed(2)
    init = torch.randn(3, 4)
    grads = [torch.randn(3, 4) * 1e-4 for _ in range(LONG_STEPS)]
    groups = {}
    for name, make in GROUPED.items():
        a, b = nn.Parameter(init.clone()), nn.Parameter(init.clone() * 2)
        opt = make([{"params": [a], "lr": 0.02}, {"params": [b], "lr": 0.005, "weight_decay": 0.1}])
        for g in grads:
            a.grad, b.grad = g.clone(), g.clone()
            opt.step()
        groups[name] = {"a": flat(a), "b": flat(b)}
    return {"init": flat(init), "grads": [flat(g) for g in grads], "result": run_optimizers(init, grads), "groups": groups}


def optimizers_reduced():
    """Every optimizer configuration over LONG_STEPS steps with bfloat16 and float16 parameters
    and gradients (`bf16-true`/`16-true`): where a kernel reads a number in float or rounds it
    to the dtype first, and one fused kernel against two roundings, show. Results as float32
    (exact for both dtypes)."""
    torch.manual_seed(3)
    init = torch.randn(3, 4)
    grads = [torch.randn(3, 4) * 0.1 for _ in range(LONG_STEPS)]
    out = {"init": flat(init), "grads": [flat(g) for g in grads], "result": {}}
    for dtype in ("bfloat16", "float16"):
        dt = getattr(torch, dtype)
        result = {}
        for name, make in OPTIMIZERS.items():
            p = nn.Parameter(init.to(dt))
            opt = make([p])
            for g in grads:
                p.grad = g.to(dt)
                opt.step()
            result[name] = flat(p.detach().float())
        out["result"][dtype] = result
    return out


def main(path):
    state, forward, inputs, made = layers()
    grads = layer_grads(made)
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "init": state, "inputs": inputs, "forward": forward, "grads": grads, "optim": optimizers(), "optim_long": optimizers_long(),
                   "optim_reduced": optimizers_reduced()}, f)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/engine.json")
