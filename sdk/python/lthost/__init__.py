"""The Python SDK for lthost plugins: Lightning's API over lthost's WIT interfaces.

Tensors are handles to libtorch tensors in the host; every op runs there, with autograd.
Write a LightningModule and a LightningDataModule as in Lightning, then export them:

    import lthost as L
    from lthost import nn, F, optim
    from lthost.exports import LightningModule, DataModule  # the component's exports

    class Mlp(L.LightningModule):
        def __init__(self, hidden=128, lr=0.003):
            super().__init__()
            self.hidden = nn.Linear(64, hidden)   # parameters `hidden.weight`, `hidden.bias`
            self.out = nn.Linear(hidden, 10)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.out(self.hidden(x).relu()), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return optim.Adam(lr=self.hparams["lr"])

    L.export(Mlp, MyData)

Build with `componentize-py -d wit -w plugin componentize -p sdk/python -p . app -o x.wasm`.
"""

from . import aten, nn, optim
from . import functional as F
from .data import Dataset, random_split, subset
from .module import LightningDataModule, LightningModule, export
from .tensor import Dtype, Tensor, tensor

__all__ = ["F", "aten", "nn", "optim", "Dataset", "random_split", "subset", "LightningDataModule", "LightningModule", "export", "Dtype", "Tensor", "tensor"]
