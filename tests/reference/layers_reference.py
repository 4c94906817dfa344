"""Reference values of torch.nn's layers for the SDK's (tests/plugins/aten-probe, `layer_check`):
from torch.manual_seed(SEED), each layer and its input made in the probe's order (so the
weights are the same draws), a dropout mask drawn, then in train mode every forward and the
backward of ½·Σout²: the outputs, every parameter's and input's gradient, and BatchNorm's
running statistics. Run by `make reference`:

    .venv/bin/python tests/reference/layers_reference.py tests/reference/layers.json
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

SEED = 11


def leaf(*shape):
    return torch.randn(*shape).requires_grad_()


def flat(t):
    return t.detach().flatten().tolist()


def main(path):
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    m = nn.ModuleDict()
    m["lin"] = nn.Linear(6, 4)
    x_lin = leaf(3, 6)
    m["conv"] = nn.Conv2d(2, 3, 3, padding=1)
    x_conv = leaf(2, 2, 5, 5)
    m["bn"] = nn.BatchNorm2d(3, eps=1e-5, momentum=0.1)
    x_bn = leaf(4, 3, 2, 2)
    m["ln"] = nn.LayerNorm(5, eps=1e-5)
    m["ln_nb"] = nn.LayerNorm(5, eps=1e-5, bias=False)
    x_ln = leaf(2, 5)
    m["emb"] = nn.Embedding(10, 3)
    idx = torch.tensor([[1, 2, 3], [9, 0, 9]])
    m["lstm"] = nn.LSTM(3, 4, num_layers=1, bias=True, batch_first=True)
    x_lstm = leaf(2, 5, 3)
    m["mha"] = nn.MultiheadAttention(8, 2, dropout=0.0, bias=True, batch_first=True)
    x_mha = leaf(2, 4, 8)
    x_do = leaf(4, 5)
    outputs = {"dropout": flat(F.dropout(x_do, 0.3, True))}

    m.train()
    lstm_out, (h, c) = m["lstm"](x_lstm)
    mha_out, mha_weights = m["mha"](x_mha, x_mha, x_mha, need_weights=True)
    outs = [
        ("lin", m["lin"](x_lin)),
        ("conv", m["conv"](x_conv)),
        ("bn", m["bn"](x_bn)),
        ("ln", m["ln"](x_ln)),
        ("ln_nb", m["ln_nb"](x_ln)),
        ("emb", m["emb"](idx)),
        ("lstm", lstm_out),
        ("lstm_h", h),
        ("lstm_c", c),
        ("mha", mha_out),
        ("mha_weights", mha_weights),
        ("max_pool2d", F.max_pool2d(x_conv, 2, 2, 0)),
        ("avg_pool2d", F.avg_pool2d(x_conv, 3, 2, 1)),
        ("adaptive_avg_pool2d", F.adaptive_avg_pool2d(x_conv, (2, 3))),
    ]
    loss = torch.zeros(())
    for name, out in outs:
        outputs[name] = flat(out)
        loss = loss + (out.square().sum() * 0.5)
    loss.backward()
    grads = {f"lc.{n}": flat(p.grad) for n, p in m.named_parameters()}
    inputs = {"lin": x_lin, "conv": x_conv, "bn": x_bn, "ln": x_ln, "lstm": x_lstm, "mha": x_mha}
    input_grads = {n: flat(x.grad) for n, x in inputs.items()}
    buffers = {"lc.bn.running_mean": flat(m["bn"].running_mean), "lc.bn.running_var": flat(m["bn"].running_var)}
    with open(path, "w") as fh:
        json.dump({"seed": SEED, "outputs": outputs, "grads": grads, "input_grads": input_grads, "buffers": buffers}, fh)
    print(f"layers reference: {len(outputs)} outputs, {len(grads)} parameter gradients")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/layers.json")
