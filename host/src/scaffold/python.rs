//! The Python template: `app.py` on the Python SDK (sdk/python), built with
//! componentize-py.

use std::path::Path;

use super::Template;

const APP_PY: &str = r#""""{name}: a LightningModule and a DataModule for lthost (`lthost init` template).
Learns y = 0.5 * sum(x) from samples with a two-layer MLP."""

import lthost as L
from lthost import F, nn, optim
from lthost.exports import DataModule, LightningModule  # noqa: F401  (the component's exports)


class Model(L.LightningModule):
    def __init__(self, lr=0.01, hidden=32):
        super().__init__()
        self.hidden = nn.Linear(8, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(self.hidden(x).relu())

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.forward(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.forward(x), y), prog_bar=True)

    def configure_optimizers(self):
        return optim.Adam(lr=self.hparams.lr)


class Data(L.LightningDataModule):
    def __init__(self, samples=512, batch_size=32, **_):
        super().__init__()
        self.samples, self.batch_size = samples, batch_size

    def setup(self, stage):
        self.splits = []
        for _ in range(2):
            x = L.Tensor.randn([self.samples, 8])
            self.splits.append((x, x.sum(1, keepdim=True) * 0.5))

    def train_dataloader(self):
        x, y = self.splits[0]
        return L.Dataset(x, y, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        x, y = self.splits[1]
        return L.Dataset(x, y, batch_size=self.batch_size)


L.export(Model, Data)
"#;

pub fn files(name: &str, sdk: &Path, repo: &Path) -> Template {
    let build = format!(
        "repo={repo}\nsdk={sdk}\nmkdir -p build\n\"${{COMPONENTIZE_PY:-$repo/.venv/bin/componentize-py}}\" -d \"$repo/wit\" -w plugin componentize -p \"$sdk/python\" -p . app -o build/app.wasm\nlthost manifest build/app.wasm --from lthost.toml --output {name}.wasm",
        repo = super::sh_quote(repo),
        sdk = super::sh_quote(sdk),
    );
    Template {
        files: vec![
            ("app.py", APP_PY.replace("{name}", name)),
            (".gitignore", "/build\n/lightning_logs\n*.wasm\n__pycache__/\n".to_string()),
        ],
        build,
        source: "app.py",
    }
}
