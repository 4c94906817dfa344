"""The digits MLP in Python: plugins/digits-mlp, written as a Lightning user would. The
same model with the same seed gives the same losses as the Rust plugin (all the math runs
in the host)."""

import sys

import lthost as L
from lthost import F, nn, optim
from lthost.exports import DataModule, LightningModule  # noqa: F401  (the component's exports)


def probe_generic_ops():
    """The generic ATen surface from Python (tests/e2e/languages.rs): an operator's error is
    a RuntimeError the plugin catches; grad mode is torch's context manager."""
    a = L.tensor([[1.0, 2.0, 3.0]])
    try:
        L.aten.call("aten::mm", a, a)
    except RuntimeError as e:
        print(f"probe caught: {e}", file=sys.stderr)
    filled = L.aten.call("aten::masked_fill.Scalar", a, a > 1.5, -1.0)
    print(f"probe masked_fill: {filled.to_f32_list()}", file=sys.stderr)
    w = L.aten.call("aten::ones", [2], dtype=L.Dtype.FLOAT32)
    w.set_requires_grad(True)
    with L.aten.no_grad():
        tracked = L.aten.call("aten::mul.Scalar", w, 2.0).requires_grad()
    print(f"probe no_grad: tracked={tracked} after={L.aten.call('aten::mul.Scalar', w, 2.0).requires_grad()}", file=sys.stderr)
    # The generated, typed operators: torch's parameter names, one int for `int[1] dim`, an
    # int where the schema says float, results as torch returns them.
    s = L.aten.sum_dim_intlist(a, 1, keepdim=True)
    values, indices = L.aten.max_dim(a, 1)
    p = L.aten.pow_tensor_scalar(a, 2)
    print(f"probe typed: {s.to_f32_list()} {L.aten.size(s, 1)} {values.to_f32_list()} {indices.to_i64_list()} "
          f"{L.aten.leaky_relu(-a, negative_slope=0.5).to_f32_list()} {p.to_f32_list()}", file=sys.stderr)
    try:
        L.aten.mm(a, a)
    except RuntimeError as e:
        print(f"probe typed caught: {e}", file=sys.stderr)


class DigitsMlp(L.LightningModule):
    def __init__(self, hidden=128, dropout=0.1, lr=0.003, batch_size=32, probe_calls=0, probe_errors=False):
        super().__init__()
        if probe_errors:
            probe_generic_ops()
        self.probe_calls = probe_calls  # host calls per step for their cost alone (make bench)
        self.hidden = nn.Linear(64, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.out(self.dropout(self.hidden(x).relu()))

    def training_step(self, batch, batch_idx):
        x, y = batch
        for _ in range(self.probe_calls):
            x.numel()
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def evaluate(self, batch, prefix):
        x, y = batch
        logits = self(x)
        self.log(f"{prefix}_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log(f"{prefix}_acc", logits.argmax(1).eq(y).float().mean(), prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    def predict_step(self, batch, batch_idx):
        return self(batch[0]).softmax(-1)

    def configure_optimizers(self):
        return optim.Adam(lr=self.hparams.lr)



class Digits(L.LightningDataModule):
    """digits.safetensors from the granted data directory: uint8 pixels 0..16, labels."""

    def __init__(self, batch_size=32, data_file="digits.safetensors", **_):
        super().__init__()
        self.batch_size, self.data_file = batch_size, data_file

    def setup(self, stage):
        self.splits = dict(L.Tensor.load(self.data_file))

    def split(self, name, shuffle):
        x = self.splits.pop(f"{name}_images").float() / 16.0
        return L.Dataset(x, self.splits.pop(f"{name}_labels"), batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        return self.split("train", True)

    def val_dataloader(self):
        return self.split("val", False)

    def test_dataloader(self):
        return self.split("test", False)


L.export(DigitsMlp, Digits)
