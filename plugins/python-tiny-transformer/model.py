"""plugins/tiny-transformer (make bench's transformer workload) written as a plain Lightning
file: one post-norm encoder block with 4-head attention over random token sequences, each
labelled with the parity of its token sum. Built with `lthost build model.py`; the same seed
gives the Rust plugin's losses (tests/e2e/languages.rs) and Lightning's running this file
(tests/reference/lightning_files_reference.py)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyTransformer(L.LightningModule):
    def __init__(self, lr=0.001):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(16, 32)
        self.attn = nn.MultiheadAttention(32, 4, dropout=0.0, bias=True, batch_first=True)
        self.ln1 = nn.LayerNorm(32)
        self.ff1 = nn.Linear(32, 64)
        self.ff2 = nn.Linear(64, 32)
        self.ln2 = nn.LayerNorm(32)
        self.head = nn.Linear(32, 2)

    def training_step(self, batch, batch_idx):
        tokens, y = batch
        x = self.emb(tokens)
        a, _ = self.attn(x, x, x)
        x = self.ln1(x + a)
        x = self.ln2(x + self.ff2(F.relu(self.ff1(x))))
        loss = F.cross_entropy(self.head(x.mean(1)), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Tokens(L.LightningDataModule):
    """512 sequences of 24 tokens from 16, drawn after the model's initialisation."""

    def setup(self, stage):
        x = torch.randint(0, 16, (512, 24))
        self.data = TensorDataset(x, x.sum(1) % 2)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=32)
