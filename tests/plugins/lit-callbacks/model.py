"""A Lightning file's own callbacks, as Lightning's docs write them: handed to the Trainer
and returned by the module's `configure_callbacks`. They read `trainer.callback_metrics`,
change the gradients before each optimizer step (the losses show where they ran), log through
`pl_module.log`, keep state in checkpoints (`state_dict` / `load_state_dict`) and stop the fit
with `trainer.should_stop`. tests/reference/main_block_reference.py runs this file in Lightning
2.6.6 (`python model.py`); tests/e2e/main_block.rs compares every loss, the epochs run and the
last value of every logged metric, and resumes from a checkpoint."""

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos.boring_classes import BoringDataModule, BoringModel


class Model(BoringModel):
    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("train_loss", out["loss"])
        return out

    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        self.log("val_loss", out["x"])
        return out

    def configure_callbacks(self):
        return EpochMarker()


class BestValLoss(Callback):
    """The best validation loss so far, logged, and kept in checkpoints with every loss seen
    (a tensor) and the worst (infinite until one is seen: its state is not plain JSON)."""

    def __init__(self):
        self.best, self.worst, self.seen = float("inf"), -float("inf"), []

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        loss = trainer.callback_metrics["val_loss"]
        self.seen.append(loss)
        self.best = min(self.best, float(loss))
        pl_module.log("best_val_loss", self.best)

    def state_dict(self):
        return {"best": self.best, "worst": self.worst, "seen": torch.stack(self.seen)}

    def load_state_dict(self, state_dict):
        self.best, self.worst, self.seen = state_dict["best"], state_dict["worst"], list(state_dict["seen"])
        print(f"BestValLoss restored: best {self.best:.6f}, worst {self.worst}, "
              f"{len(self.seen)} losses seen ({state_dict['seen'].dtype})")


class DampGradients(Callback):
    """Every gradient scaled before the optimizer step."""

    def __init__(self, factor):
        self.factor = factor

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        for p in pl_module.parameters():
            p.grad.mul_(self.factor)


class BatchStats(Callback):
    def __init__(self):
        self.rows = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows += batch.shape[0]
        pl_module.log("rows_seen", float(self.rows))
        pl_module.log("loss_from_outputs", outputs["loss"], on_step=False, on_epoch=True)


class StopAfter(Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class EpochMarker(Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        print(f"epoch {trainer.current_epoch} starts after step {trainer.global_step}")

    def on_train_epoch_end(self, trainer, pl_module):
        pl_module.log("marker_epoch", float(trainer.current_epoch))


if __name__ == "__main__":
    L.seed_everything(7)
    model = Model()
    data = BoringDataModule()
    trainer = L.Trainer(max_epochs=6, limit_train_batches=8, limit_val_batches=4, log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[BestValLoss(), DampGradients(0.5), BatchStats(), StopAfter(3)])
    trainer.fit(model, datamodule=data)
