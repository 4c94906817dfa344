"""A plugin that runs checks.py against lthost's `torch` package when its LightningModule is
built, printing each check's result as a JSON line (`torch-probe: {name: result}`) for
tests/e2e/lightning_files.rs to compare with tests/reference/torch_api_reference.py (the same
checks in torch); then trains one tiny step."""

import json
import sys

import lightning as L
import torch
import torchmetrics  # noqa: F401  (checks.py imports it inside a check; a plugin has what was imported when it was built)
from torch.utils.data import DataLoader, TensorDataset

import checks


class TorchProbe(L.LightningModule):
    def __init__(self, unsupported_in=None):
        super().__init__()
        self.unsupported_in = unsupported_in  # "init" / "step": use an API lthost lacks there
        if unsupported_in == "init":
            torch.from_numpy([1.0])
        for name, result in checks.run(torch).items():  # a line each: plugin output lines are capped
            print("torch-probe: " + json.dumps({name: result}), file=sys.stderr)
        self.layer = torch.nn.Linear(2, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.unsupported_in == "step":
            x = torch.from_numpy(x)
        # The file keeps what it handed to the host: its dataset's tensors (one of them twice,
        # as an autoencoder's TensorDataset(x, x)) and the loss it returns.
        kept = self.data.tensors[0] + self.data.tensors[1]
        # What the step sees of the run's precision (Lightning's: autocast in mixed modes, the
        # default dtype and the batch's dtype in true ones).
        seen = [self.trainer.precision, torch.is_autocast_enabled("cpu"), str(torch.get_autocast_dtype("cpu")),
                str(torch.get_default_dtype()), str(x.dtype), str(self.layer(x).dtype)]
        print("torch-probe-precision: " + json.dumps(seen), file=sys.stderr)
        self.loss = torch.nn.functional.mse_loss(self.layer(x), y) + 0 * kept.sum()
        return self.loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        print("torch-probe-kept: " + json.dumps([self.loss.item(), outputs["loss"].item(), batch[0].shape[0]]), file=sys.stderr)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        x = torch.ones(4, 2)
        self.data = TensorDataset(x, x)
        return DataLoader(self.data, batch_size=4)
