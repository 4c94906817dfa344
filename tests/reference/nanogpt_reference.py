"""Reference per-step losses of nanoGPT in torch itself: the oracle for plugins/nanogpt
(the same model, init, data and AdamW groups), with the flash (scaled_dot_product_attention)
and the masked-softmax attention paths, and from pretrained weights (another seed's, written
to tests/reference/files/nanogpt-init.safetensors) loaded into the model. Run by `make reference`:

    .venv/bin/python tests/reference/nanogpt_reference.py tests/reference/nanogpt.json
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

CONFIG = dict(n_layer=2, n_head=4, n_embd=64, block_size=16, vocab_size=32, bias=False, dropout=0.0)
STEPS, BATCH, ROWS, SEED, LR, WD, BETAS = 100, 8, 800, 1337, 1e-3, 0.1, (0.9, 0.95)


class LayerNorm(nn.Module):
    """nanoGPT's LayerNorm with an optional bias."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c, flash):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.attn_dropout = nn.Dropout(c["dropout"])
        self.resid_dropout = nn.Dropout(c["dropout"])
        self.n_head, self.n_embd, self.flash = c["n_head"], c["n_embd"], flash
        if not flash:
            b = c["block_size"]
            self.register_buffer("bias", torch.tril(torch.ones(b, b)).view(1, 1, b, b))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (u.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for u in (q, k, v))
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=c["bias"])
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=c["bias"])
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, c, flash):
        super().__init__()
        self.ln_1 = LayerNorm(c["n_embd"], c["bias"])
        self.attn = CausalSelfAttention(c, flash)
        self.ln_2 = LayerNorm(c["n_embd"], c["bias"])
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c, flash):
        super().__init__()
        self.c = c
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
                wpe=nn.Embedding(c["block_size"], c["n_embd"]),
                drop=nn.Dropout(c["dropout"]),
                h=nn.ModuleList([Block(c, flash) for _ in range(c["n_layer"])]),
                ln_f=LayerNorm(c["n_embd"], c["bias"]),
            )
        )
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c["n_layer"]))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def configure_optimizers(self):
        params = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay = [p for p in params.values() if p.dim() >= 2]
        no_decay = [p for p in params.values() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=LR, betas=BETAS)


def tokens(c):
    """The plugin's token stream: row i starts at i mod vocab, next = (5t + 3) mod vocab."""
    x, y = [], []
    for i in range(ROWS):
        tok = i % c["vocab_size"]
        seq = [tok]
        for _ in range(c["block_size"]):
            tok = (5 * tok + 3) % c["vocab_size"]
            seq.append(tok)
        x.append(seq[:-1])
        target = seq[1:]
        if i % 4 == 0:
            target[0] = -1
        y.append(target)
    return torch.tensor(x), torch.tensor(y)


def losses(flash, init_from=None):
    torch.manual_seed(SEED)
    model = GPT(CONFIG, flash)
    if init_from is not None:
        # A tied parameter is in the file once (under transformer.wte.weight).
        missing, unexpected = model.load_state_dict(load_file(init_from), strict=False)
        assert missing == ["lm_head.weight"] and not unexpected, (missing, unexpected)
    opt = model.configure_optimizers()
    x, y = tokens(CONFIG)
    out = []
    for step in range(STEPS):
        xb, yb = x[step * BATCH : (step + 1) * BATCH], y[step * BATCH : (step + 1) * BATCH]
        loss = model(xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out.append(loss.item())
    return out


def pretrained(path):
    """Weights from another seed, saved as a safetensors file (the tied head once)."""
    torch.manual_seed(SEED + 1)
    state = GPT(CONFIG, True).state_dict()
    del state["lm_head.weight"]
    save_file({k: v.contiguous() for k, v in state.items()}, path)


def main(out_path):
    torch.set_num_threads(1)
    files = os.path.join(os.path.dirname(os.path.abspath(out_path)), "files")
    os.makedirs(files, exist_ok=True)
    init = os.path.join(files, "nanogpt-init.safetensors")
    pretrained(init)
    result = {
        "seed": SEED,
        "threads": 1,
        "init_from": "nanogpt-init.safetensors",
        "losses": {"flash": losses(True), "masked": losses(False), "pretrained": losses(True, init)},
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"nanogpt reference: {STEPS} steps, flash {result['losses']['flash'][-1]:.6f}, masked {result['losses']['masked'][-1]:.6f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/nanogpt.json")
