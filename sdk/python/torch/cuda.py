"""torch.cuda, as a plugin sees it: the device is the trainer's (`self.device` in a
LightningModule); a plugin does not pick GPUs itself."""

from wit_world.imports import trainer


def is_available():
    return trainer.device().startswith("cuda")


def device_count():
    return 1 if is_available() else 0


def manual_seed(_seed):
    raise NotImplementedError("torch.cuda.manual_seed: the run's seed is lthost's `--seed`")


manual_seed_all = manual_seed
