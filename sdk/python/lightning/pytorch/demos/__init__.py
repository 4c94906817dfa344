"""`lightning.pytorch.demos` inside an lthost plugin: Lightning's demo classes that Lightning's
own tests, its docs and bug reports build on (`boring_classes`). The language-model demos
(`Transformer`, `WikiText2`, `LightningTransformer`, the LSTM ones) download their data, which a
plugin cannot: naming them is an error that says so."""

from .boring_classes import BoringDataModule, BoringModel, DemoModel  # noqa: F401

_NOT_HERE = ("LightningLSTM", "SequenceSampler", "SimpleLSTM", "LightningTransformer", "Transformer", "WikiText2")


def __getattr__(name):
    if name in _NOT_HERE:
        raise NotImplementedError(f"lightning.pytorch.demos.{name}: not in lthost's SDK (its data is a download, and a "
                                  f"plugin reads no network); write the model in the file")
    raise AttributeError(f"module 'lightning.pytorch.demos' has no attribute '{name}'")
