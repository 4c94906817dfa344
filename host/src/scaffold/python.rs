//! The Python template: a plain Lightning file (`model.py`: `import torch`, `import lightning
//! as L`, a `__main__` block that trains it), built with `lthost build`.

use super::Template;

const MODEL_PY: &str = r#""""{name}: a Lightning file for lthost (`lthost init` template). Learns
y = 0.5 * sum(x) from samples with a two-layer MLP. Plain torch and Lightning:
`lthost build model.py` makes it a plugin."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Model(L.LightningModule):
    def __init__(self, lr=0.01, hidden=32):
        super().__init__()
        self.save_hyperparameters()
        self.hidden = nn.Linear(8, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(self.hidden(x).relu())

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class Data(L.LightningDataModule):
    def __init__(self, samples=512, batch_size=32):
        super().__init__()
        self.samples, self.batch_size = samples, batch_size

    def setup(self, stage):
        self.splits = []
        for _ in range(2):
            x = torch.randn(self.samples, 8)
            self.splits.append(TensorDataset(x, x.sum(1, keepdim=True) * 0.5))

    def train_dataloader(self):
        return DataLoader(self.splits[0], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.splits[1], batch_size=self.batch_size)


if __name__ == "__main__":
    # `python model.py` trains it in Lightning; `lthost build` keeps what this block gives the
    # Trainer as the plugin's defaults, so `lthost fit {name}.wasm` trains the same way
    # (run.toml, --set and flags go over them).
    L.seed_everything(0)
    trainer = L.Trainer(max_epochs=10)
    trainer.fit(Model(), datamodule=Data())
"#;

pub fn files(name: &str) -> Template {
    Template {
        files: vec![
            ("model.py".to_string(), MODEL_PY.replace("{name}", name)),
            (".gitignore".to_string(), "/lightning_logs\n*.wasm\n__pycache__/\n".to_string()),
        ],
        build: format!("lthost build model.py -o {name}.wasm"),
        source: "model.py",
    }
}
