"""Lightning's quickstart written as its README and many tutorials write it: the training code
at the file's top level, with no `if __name__ == "__main__":` block, around the class. Same
model, data, seed and order of draws as tests/plugins/lit-quickstart, so its per-step losses
are that file's in Lightning 2.6.6 (tests/reference/main_block.json, "lit-quickstart").
`lthost build` takes the top-level training code as the file's `__main__` block
(sdk/python/lightning/_script.py); `LATENT`, which the class reads, and the matmul setting
stay at the top level, run when the file is imported. tests/e2e/main_block.rs."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn, optim, utils

LATENT = 3
torch.set_float32_matmul_precision("highest")

L.seed_everything(5)
images = torch.rand(640, 1, 28, 28)
labels = torch.randint(0, 10, (640,))
dataset = utils.data.TensorDataset(images, labels)
train_set, val_set, test_set = utils.data.random_split(dataset, [512, 64, 64])
train_loader = utils.data.DataLoader(train_set, batch_size=32, shuffle=True)
val_loader = utils.data.DataLoader(val_set, batch_size=32)


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
        assert z.shape[1] == LATENT
        loss = F.mse_loss(self.decoder(z), x)
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


encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, LATENT))
decoder = nn.Sequential(nn.Linear(LATENT, 64), nn.ReLU(), nn.Linear(64, 28 * 28))
autoencoder = LitAutoEncoder(encoder, decoder, lr=2e-3)

trainer = L.Trainer(max_epochs=3, limit_train_batches=10, log_every_n_steps=1, enable_progress_bar=False)
trainer.fit(model=autoencoder, train_dataloaders=train_loader, val_dataloaders=val_loader)
best = trainer.checkpoint_callback.best_model_path
trainer.test(autoencoder, dataloaders=utils.data.DataLoader(test_set, batch_size=32), ckpt_path=best)
print(f"test_loss {trainer.callback_metrics['test_loss']:.6f}")
