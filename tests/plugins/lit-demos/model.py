"""Lightning's bug-report shape, as Lightning's own tests write it: a subclass of the
BoringModel of `lightning.pytorch.demos.boring_classes` that logs, Lightning's
BoringDataModule, Lightning's utilities (`grad_norm` logged before each optimizer step, as
Lightning's docs show, `rank_zero_only`, the `STEP_OUTPUT` type), gradients changed in that
hook (the step uses them), the batch's `callback_metrics` read in `on_train_batch_end`, and the
training code at the file's top level. `lthost build` finds
the subclass and the imported data module; tests/reference/main_block_reference.py runs this
file in Lightning 2.6.6 (`python model.py`) and tests/e2e/main_block.rs compares every loss and
the last value of every logged metric."""

# Lightning's own module paths, as files import from them (each must exist in lthost's SDK
# as in Lightning: the build fails otherwise).
from lightning.pytorch.callbacks import DeviceStatsMonitor, OnExceptionCheckpoint  # noqa: F401
from lightning.pytorch.callbacks.early_stopping import EarlyStopping  # noqa: F401
from lightning.pytorch.core.module import LightningModule  # noqa: F401
from lightning.pytorch.loggers.csv_logs import CSVLogger  # noqa: F401
from lightning.pytorch.profilers import SimpleProfiler  # noqa: F401
from lightning.pytorch.tuner import Tuner  # noqa: F401
from lightning.pytorch import seed_everything
from lightning.pytorch.trainer.trainer import Trainer
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel
from lightning.pytorch.utilities import grad_norm, rank_zero_only
from lightning.pytorch.utilities.types import STEP_OUTPUT


class LoggingModel(BoringModel):
    def training_step(self, batch, batch_idx) -> STEP_OUTPUT:
        out = super().training_step(batch, batch_idx)
        self.log("train_loss", out["loss"])
        return out

    def validation_step(self, batch, batch_idx) -> STEP_OUTPUT:
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"])
        return out

    def on_before_optimizer_step(self, optimizer):
        self.log_dict(grad_norm(self.layer, norm_type=2))
        # The gradients changed here are the ones the step uses: halved, by assignment and in place.
        self.layer.weight.grad = self.layer.weight.grad * 0.5
        self.layer.bias.grad.mul_(0.5)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        # This batch's value, as Lightning computes callback_metrics when read.
        self.log("twice_train_loss", self.trainer.callback_metrics["train_loss"] * 2)

    def prepare_data(self):
        self.prepared = True

    @rank_zero_only
    def on_train_end(self):
        print(f"trained {self.global_step} steps on rank 0 (prepare_data ran: {getattr(self, 'prepared', False)})")


seed_everything(3)
data = BoringDataModule()
model = LoggingModel()
trainer = Trainer(max_epochs=3, limit_train_batches=16, log_every_n_steps=1, enable_progress_bar=False,
                  enable_model_summary=False)
trainer.fit(model, datamodule=data)
