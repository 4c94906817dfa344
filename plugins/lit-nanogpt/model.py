"""karpathy's nanoGPT model inside a LightningModule, as a Lightning user writes it: the GPT
of nanoGPT's model.py (causal self-attention with a registered `tril` mask or
`F.scaled_dot_product_attention`, GELU MLP, pre-norm blocks, the output head tied to the
token embedding, nanoGPT's `_init_weights` and scaled `c_proj` init), AdamW with nanoGPT's
decay / no-decay groups, and nanoGPT's learning-rate schedule (linear warm-up, then cosine
decay to `min_lr`) as a LambdaLR stepped every optimizer step. The data: a deterministic
token stream in a TensorDataset. Plain `torch` and `lightning` imports; the same file runs in
Lightning 2.6.6 (tests/reference/lightning_files_reference.py)."""

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's takes no bias=False before 2.1)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = config.flash and hasattr(torch.nn.functional, "scaled_dot_product_attention")
        if not self.flash:
            mask = torch.tril(torch.ones(config.block_size, config.block_size))
            self.register_buffer("bias", mask.view(1, 1, config.block_size, config.block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass
class GPTConfig:
    block_size: int = 16
    vocab_size: int = 32
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = False
    flash: bool = True


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def get_num_params(self):
        return sum(p.numel() for p in self.parameters()) - self.transformer.wpe.weight.numel()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        assert t <= self.config.block_size, f"Cannot forward sequence of length {t}, block size is only {self.config.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss


class NanoGPT(L.LightningModule):
    def __init__(self, n_layer=2, n_head=4, n_embd=64, block_size=16, vocab_size=32, dropout=0.0, bias=False,
                 flash=True, learning_rate=1e-3, min_lr=1e-4, warmup_iters=20, lr_decay_iters=200,
                 weight_decay=0.1, beta1=0.9, beta2=0.95):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPT(GPTConfig(block_size, vocab_size, n_layer, n_head, n_embd, dropout, bias, flash))

    def training_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        _, loss = self.model(x, y)
        self.log("val_loss", loss, prog_bar=True)

    def get_lr_factor(self, it):
        """nanoGPT's get_lr(it) / learning_rate: linear warm-up, cosine decay, then min_lr."""
        hp = self.hparams
        if it < hp.warmup_iters:
            return (it + 1) / (hp.warmup_iters + 1)
        if it > hp.lr_decay_iters:
            return hp.min_lr / hp.learning_rate
        decay_ratio = (it - hp.warmup_iters) / (hp.lr_decay_iters - hp.warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return (hp.min_lr + coeff * (hp.learning_rate - hp.min_lr)) / hp.learning_rate

    def configure_optimizers(self):
        param_dict = {pn: p for pn, p in self.model.named_parameters() if p.requires_grad}
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": self.hparams.weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(optim_groups, lr=self.hparams.learning_rate, betas=(self.hparams.beta1, self.hparams.beta2))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.get_lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class TokenStream(L.LightningDataModule):
    """Row i starts at token i mod vocab, then next = (5 * t + 3) mod vocab; targets are the
    inputs shifted by one, every fourth row's first target ignored (-1)."""

    def __init__(self, rows=800, block_size=16, vocab_size=32, batch_size=8):
        super().__init__()
        self.rows, self.block_size, self.vocab_size, self.batch_size = rows, block_size, vocab_size, batch_size

    def setup(self, stage):
        seqs = []
        for i in range(self.rows):
            tok = i % self.vocab_size
            seq = [tok]
            for _ in range(self.block_size):
                tok = (5 * tok + 3) % self.vocab_size
                seq.append(tok)
            seqs.append(seq)
        data = torch.tensor(seqs, dtype=torch.long)
        x, y = data[:, :-1], data[:, 1:].clone()
        y[::4, 0] = -1
        n_val = self.rows // 10
        self.train = TensorDataset(x[n_val:], y[n_val:])
        self.val = TensorDataset(x[:n_val], y[:n_val])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)
