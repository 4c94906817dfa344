"""The digits example in PyTorch Lightning itself: the same MLP (Linear 64→128, ReLU,
Dropout 0.1, Linear 128→10, cross-entropy, Adam 0.003), the same data
(plugins/digits-mlp/data/digits.safetensors, images / 16), a shuffled train DataLoader and
a validation DataLoader of batch 32, the default sanity check, three epochs. Every
training step's loss and each epoch's validation loss are recorded; tests/e2e/digits.rs
runs lthost's digits plugin with the same seed and compares — shuffling, dropout and the
validation runs draw from the generator in the same order in both.

    .venv/bin/python tests/reference/digits_reference.py tests/reference/digits.json

`--accelerator=cuda` runs it on the GPU (tools/gpu-check.sh compares lthost on the same GPU).
"""

import csv
import json
import os
import sys
import tempfile
import warnings

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = [42, 3]
EPOCHS = 3


class DigitsMlp(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 128)
        self.dropout = nn.Dropout(0.1)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        return self.out(self.dropout(torch.relu(self.hidden(x))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.003)


def run(seed, accelerator):
    torch.manual_seed(seed)
    model = DigitsMlp()
    d = load_file(os.path.join(ROOT, "plugins/digits-mlp/data/digits.safetensors"))
    split = lambda name: TensorDataset(d[f"{name}_images"].float() / 16.0, d[f"{name}_labels"])
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(max_epochs=EPOCHS, accelerator=accelerator, devices=1, logger=L.pytorch.loggers.CSVLogger(root, name="lightning_logs"),
                            log_every_n_steps=1, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            default_root_dir=root)
        trainer.fit(model, DataLoader(split("train"), batch_size=32, shuffle=True), DataLoader(split("val"), batch_size=32))
        with open(os.path.join(trainer.logger.log_dir, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    return {
        "train_loss": [float(r["train_loss"]) for r in rows if r.get("train_loss")],
        "val_loss": [float(r["val_loss"]) for r in rows if r.get("val_loss")],
    }


def main(path, accelerator="cpu"):
    out = {"lightning": L.__version__, "torch": torch.__version__, "epochs": EPOCHS, "accelerator": accelerator,
           "seeds": {str(s): run(s, accelerator) for s in SEEDS}}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: lightning {L.__version__}, seeds {SEEDS}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--accelerator")]
    acc = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--accelerator=")), "cpu")
    main(args[0] if args else "tests/reference/digits.json", acc)
