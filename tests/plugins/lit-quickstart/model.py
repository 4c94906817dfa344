"""Lightning's quickstart as people write it ("Lightning in 15 minutes"): the LightningModule
takes its encoder and decoder as arguments and has no `*_dataloader` methods; the `__main__`
block makes the data, the DataLoaders and the model, and hands them to `trainer.fit`, then
tests. (Random 28×28 images stand in for torchvision's MNIST download: a plugin reads no
network.) Nothing here is for lthost: `lthost build` finds the block hands DataLoaders to the
trainer, and the plugin runs the block when a run starts, up to the trainer call of the run's
stage (lightning/_block_run.py). tests/e2e/main_block.rs compares `lthost fit` and `lthost test`
of the built file with tests/reference/main_block_reference.py, which runs this file's block
in Lightning 2.6.6."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn, optim, utils


class LitAutoEncoder(L.LightningModule):
    def __init__(self, encoder, decoder, lr=1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "decoder"])
        self.encoder = encoder
        self.decoder = decoder

    def training_step(self, batch, batch_idx):
        x, _ = batch
        x = x.view(x.size(0), -1)
        z = self.encoder(x)
        x_hat = self.decoder(z)
        loss = F.mse_loss(x_hat, x)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        x = x.view(x.size(0), -1)
        self.log("val_loss", F.mse_loss(self.decoder(self.encoder(x)), x))

    def test_step(self, batch, batch_idx):
        x, _ = batch
        x = x.view(x.size(0), -1)
        self.log("test_loss", F.mse_loss(self.decoder(self.encoder(x)), x))

    def configure_optimizers(self):
        return optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(5)
    # The data first: its random draws come before the model's, as in the quickstart.
    images = torch.rand(640, 1, 28, 28)
    labels = torch.randint(0, 10, (640,))
    dataset = utils.data.TensorDataset(images, labels)
    train_set, val_set, test_set = utils.data.random_split(dataset, [512, 64, 64])
    train_loader = utils.data.DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = utils.data.DataLoader(val_set, batch_size=32)

    encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3))
    decoder = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 28 * 28))
    autoencoder = LitAutoEncoder(encoder, decoder, lr=2e-3)

    trainer = L.Trainer(max_epochs=3, limit_train_batches=10, log_every_n_steps=1, enable_progress_bar=False)
    trainer.fit(model=autoencoder, train_dataloaders=train_loader, val_dataloaders=val_loader)
    best = trainer.checkpoint_callback.best_model_path
    trainer.test(autoencoder, dataloaders=utils.data.DataLoader(test_set, batch_size=32), ckpt_path=best)
    print(f"test_loss {trainer.callback_metrics['test_loss']:.6f}")
