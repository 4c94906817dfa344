"""`save_hyperparameters` as Lightning files call it, chosen by the `save` and `data_save`
hyper-parameters: which of them reach hparams.yaml, and when Lightning refuses to merge a
module's and a DataModule's (tests/e2e/lightning_files.rs against Lightning 2.6.6); the
`batch_size` every DataLoader takes, for the batch-size finder in each stage; a learning rate
and a batch size kept on the module, as an attribute or a hyper-parameter, for the tuner's
`attr_name` and its search of the module's holders (docs/lightning-tests/tuner.md rows 5, 31)."""

import torch
import torchmetrics
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L


class Base(L.LightningModule):
    def __init__(self, lr=0.1, save="all"):
        super().__init__()
        if save in ("inherited", "inherited-ignore"):
            # Saves the subclass's arguments too: Lightning walks up to the most specific __init__.
            self.save_hyperparameters()


class Regressor(Base):
    def __init__(self, lr=0.1, hidden=4, tag="mlp", save="all", flags=(1, 2), opts=None, oom_above=None, fancy=None,
                 batch_on_model=None, bad_return=None, signature=None, log_invalid=None):
        super().__init__(lr, save)
        # test_step and predict_step raise CUDA's out-of-memory error for a batch larger than this.
        self.oom_above = oom_above
        if save == "all":
            self.save_hyperparameters()
        elif save == "ignore":
            self.save_hyperparameters(ignore=["hidden", "flags"])
        elif save == "inherited-ignore":
            # Drops what the base class saved under these names too.
            self.save_hyperparameters(ignore=("hidden", "flags"))
        elif save == "names":
            self.save_hyperparameters("lr", "tag")
        elif save == "nolog":
            self.save_hyperparameters(logger=False)
        elif save == "dict":
            self.save_hyperparameters({"width": hidden * 2, "note": "from a dict"})
        self.net = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.lr = lr
        # "attr" / "hparams": the optimizer's learning rate is read from `my_fancy_lr`, kept as an
        # attribute or a hyper-parameter (Lightning's test_trainer_arg_str).
        self.fancy = fancy
        # "int" / "dict": training_step returns 5 or a dict without "loss" (Lightning refuses both);
        # "extra": a dict with "loss" and more, which on_train_batch_end gets as `outputs`.
        self.bad_return = bad_return
        # {"value": v}: training_step logs `foo` = v, which Lightning refuses unless a number or a
        # tensor; {"metric": true}: a torchmetrics metric the module does not hold.
        self.log_invalid = log_invalid
        # "batch_only": the validation, test and predict steps take the batch alone, and Lightning
        # calls them without batch_idx.
        if signature == "batch_only":
            self.validation_step = self.validation_step_batch_only
            self.test_step = self.test_step_batch_only
            self.predict_step = self.predict_step_batch_only
        if fancy == "attr":
            self.my_fancy_lr = lr
        elif fancy == "hparams":
            self.hparams["my_fancy_lr"] = lr
        # "attr" / "hparams": the DataLoaders' batch size is the module's (test_auto_scale_batch_size_set_model_attribute).
        if batch_on_model == "attr":
            self.batch_size = 8
        elif batch_on_model == "hparams":
            self.hparams["batch_size"] = 8

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        if self.log_invalid is not None and "metric" in self.log_invalid:
            mean = torchmetrics.MeanMetric()
            mean(loss)
            self.log("foo", mean)
        elif self.log_invalid is not None:
            self.log("foo", self.log_invalid["value"])
        if self.bad_return == "int":
            return 5
        if self.bad_return == "dict":
            return {"mse": loss}
        if self.bad_return == "extra":
            return {"loss": loss, "random_things": [1, "a", torch.tensor(2.0)], "batch_idx": batch_idx}
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.bad_return == "extra":
            # Lightning's outputs: the loss detached, the other keys as returned.
            self.log("outputs_loss", outputs["loss"])
            self.log("outputs_loss_grad", float(outputs["loss"].requires_grad))
            self.log("outputs_things", float(len(outputs["random_things"]) + outputs["random_things"][2]))
            self.log("outputs_batch_idx", float(outputs["batch_idx"] == batch_idx))

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def _fits(self, batch):
        if self.oom_above is not None and len(batch[0]) > self.oom_above:
            raise RuntimeError(f"CUDA out of memory. Tried to allocate a batch of {len(batch[0])}")

    def test_step(self, batch, batch_idx):
        self._fits(batch)
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self.net(x), y))

    def predict_step(self, batch, batch_idx):
        self._fits(batch)
        return self.net(batch[0])

    def validation_step_batch_only(self, batch):
        return Regressor.validation_step(self, batch, 0)

    def test_step_batch_only(self, batch):
        return Regressor.test_step(self, batch, 0)

    def predict_step_batch_only(self, batch):
        return Regressor.predict_step(self, batch, 0)

    def configure_optimizers(self):
        lr = {"attr": lambda: self.my_fancy_lr, "hparams": lambda: self.hparams.my_fancy_lr}.get(self.fancy, lambda: self.lr)()
        return torch.optim.SGD(self.parameters(), lr=lr)


class Points(L.LightningDataModule):
    def __init__(self, batch_size=8, data_save="none", lr=0.2, noisy=False, batch_on_model=None):
        super().__init__()
        # Each evaluation loader draws its points' noise from the global generator when asked
        # for (as BoringModel's RandomDataset does): what it holds depends on every draw before.
        self.noisy = noisy
        if data_save == "all":
            self.save_hyperparameters()
        elif data_save == "nolog":
            self.save_hyperparameters(logger=False)
        if batch_on_model is None:
            self.batch_size = batch_size

    def _size(self):
        if hasattr(self, "batch_size"):
            return self.batch_size
        model = self.trainer.lightning_module
        return model.batch_size if hasattr(model, "batch_size") else model.hparams.batch_size

    def setup(self, stage):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 3, generator=g)
        self.points = TensorDataset(x, x.sum(1, keepdim=True))

    def train_dataloader(self):
        return DataLoader(self.points, batch_size=self._size())

    def val_dataloader(self):
        return DataLoader(self._evaluated(), batch_size=self._size())

    def _evaluated(self):
        if not self.noisy:
            return self.points
        x, y = self.points.tensors
        return TensorDataset(x + 0.1 * torch.randn_like(x), y)

    def test_dataloader(self):
        return DataLoader(self._evaluated(), batch_size=self._size())

    def predict_dataloader(self):
        return DataLoader(self._evaluated(), batch_size=self._size())
