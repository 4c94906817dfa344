"""Reference per-step losses and learning rates from Lightning 2.6 itself for the Trainer's
training options, on Lightning's ParityModuleRNN (plugins/parity-rnn, whose hyper-parameters
`optimizer`, `lr`, `plateau` and `log_lr` these cases set): gradient clipping by norm and by
value, gradient accumulation (the loss divided by n, the last window of each epoch partial:
10 batches in windows of 3 or 4), both together, and ReduceLROnPlateau monitoring
`train_loss` at the epoch and at the step interval. SGD, not Adam, so that a loss scaled by
accumulation or a gradient clipped shows in the next steps' losses (Adam's update is nearly
invariant to the gradient's scale). Recorded: what Lightning's CSVLogger writes with
`log_every_n_steps=1` (`train_loss`, and `lr` where the case logs it: the columns lthost's
metrics.csv must equal), every batch's loss and learning rate, the optimizer steps. The
order of random draws is lthost's: seed, model construction, dataset.

    .venv/bin/python tests/reference/training_options_reference.py tests/reference/training_options.json
"""

import csv
import json
import logging
import os
import sys
import tempfile
import warnings

import torch

from parity_reference import THREADS, ParityModuleRNN, average_dataset

SEEDS = [0, 1]
SGD = {"optimizer": "sgd", "lr": 0.1}
CASES = {
    "clip_norm": {"epochs": 3, "trainer": {"gradient_clip_val": 0.5, "gradient_clip_algorithm": "norm"}, "hparams": SGD},
    "clip_value": {"epochs": 3, "trainer": {"gradient_clip_val": 0.02, "gradient_clip_algorithm": "value"}, "hparams": SGD},
    "accumulate_3": {"epochs": 3, "trainer": {"accumulate_grad_batches": 3}, "hparams": SGD},
    "accumulate_4_clip_norm": {"epochs": 3, "trainer": {"accumulate_grad_batches": 4, "gradient_clip_val": 0.3}, "hparams": SGD},
    "plateau_epoch": {"epochs": 8, "trainer": {}, "hparams": {"optimizer": "sgd", "lr": 2.0, "log_lr": True,
                                                              "plateau": {"interval": "epoch", "patience": 0, "factor": 0.5}}},
    "plateau_step": {"epochs": 3, "trainer": {}, "hparams": {"optimizer": "sgd", "lr": 0.3, "log_lr": True,
                                                             "plateau": {"interval": "step", "patience": 1, "factor": 0.5}}},
}


def run(case, seed):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    hp = case["hparams"]

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.inner = ParityModuleRNN()
            self.losses, self.lrs = [], []

        def training_step(self, batch, batch_idx):
            loss = self.inner.training_step(batch)
            self.log("train_loss", loss, prog_bar=True)
            lr = self.optimizers().param_groups[0]["lr"]
            if hp.get("log_lr"):
                self.log("lr", lr)
            self.losses.append(loss.item())
            self.lrs.append(lr)
            return loss

        def configure_optimizers(self):
            cls = torch.optim.SGD if hp["optimizer"] == "sgd" else torch.optim.Adam
            opt = cls(self.parameters(), lr=hp["lr"])
            plateau = hp.get("plateau")
            if not plateau:
                return opt
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=plateau["factor"], patience=plateau["patience"])
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": plateau["interval"], "frequency": 1,
                                                       "monitor": "train_loss", "strict": True}}

    L.seed_everything(seed, verbose=False)
    model = Module()
    x, y = average_dataset()
    with tempfile.TemporaryDirectory() as d:
        logger = L.pytorch.loggers.CSVLogger(d, name="", version="")
        trainer = L.Trainer(max_epochs=case["epochs"], accelerator="cpu", devices=1, logger=logger, log_every_n_steps=1,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, **case["trainer"])
        trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=30))
        with open(os.path.join(logger.log_dir, "metrics.csv")) as f:
            rows = list(csv.DictReader(f))
    logged = {k: [float(r[k]) for r in rows if r.get(k)] for k in ("train_loss", "lr")}
    return {"logged": logged, "losses": model.losses, "lrs": model.lrs, "global_step": trainer.global_step}


def main(out_path):
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(THREADS)
    import lightning

    result = {"lightning": lightning.__version__, "torch": torch.__version__, "threads": THREADS, "cases": {}}
    for name, case in CASES.items():
        result["cases"][name] = dict(case, runs={str(s): run(case, s) for s in SEEDS})
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out_path}: Lightning {lightning.__version__}, {len(CASES)} cases, seeds {SEEDS}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/training_options.json")
