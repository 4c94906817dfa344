"""Reference per-step losses from PyTorch itself: the oracle for lthost's ops, layer
initialisation and optimizers.

The two models are Lightning's parity models (tests/parity_pytorch/models.py in
Lightning): ParityModuleRNN on AverageDataset and ParityModuleMNIST (on MNIST-shaped
data drawn from the seeded generator, since MNIST cannot be downloaded here). The loop is
Lightning's "vanilla" parity loop: a DataLoader without shuffling (each pass draws its
iterator's base seed from the generator, as lthost's does), training_step, backward, step,
zero_grad. The order of random draws is lthost's: seed, model construction, dataset.

    .venv/bin/python tests/reference/parity_reference.py tests/reference/parity.json
"""

import json
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SEEDS = [0, 1, 2]
EPOCHS = {"parity-rnn": 3, "parity-mlp": 4}
THREADS = 1
# Lightning's `precision` values the same models train in (Lightning's Trainer, seed 0).
PRECISIONS = ["bf16-mixed", "64-true", "bf16-true"]


class ParityModuleRNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(10, 20, batch_first=True)
        self.linear_out = nn.Linear(in_features=20, out_features=5)

    def forward(self, x):
        seq, _ = self.rnn(x)
        return self.linear_out(seq)

    def training_step(self, batch):
        x, y = batch
        return F.mse_loss(self(x), y)


def average_dataset(dataset_len=300, sequence_len=100):
    input_seq = torch.randn(dataset_len, sequence_len, 10)
    top, bottom = input_seq.chunk(2, -1)
    return input_seq, top + bottom.roll(shifts=1, dims=-1)


class ParityModuleMNIST(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_d1 = nn.Linear(in_features=28 * 28, out_features=128)
        self.c_d1_bn = nn.BatchNorm1d(128)
        self.c_d1_drop = nn.Dropout(0.3)
        self.c_d2 = nn.Linear(in_features=128, out_features=10)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = self.c_d1(x)
        x = torch.tanh(x)
        x = self.c_d1_bn(x)
        x = self.c_d1_drop(x)
        return self.c_d2(x)

    def training_step(self, batch):
        x, y = batch
        return F.cross_entropy(self(x), y)


def synthetic_mnist(n=640):
    return torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))


def seeded(name, seed):
    """The model `name`, its batch size and data, drawn in lthost's order after the seed."""
    torch.manual_seed(seed)
    if name == "parity-rnn":
        model, batch_size = ParityModuleRNN(), 30
        return (model, batch_size, *average_dataset())
    model, batch_size = ParityModuleMNIST(), 128
    return (model, batch_size, *synthetic_mnist())


def vanilla_loop(name, seed):
    model, batch_size, x, y = seeded(name, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    losses, grad_norms = [], []
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size)
    for _ in range(EPOCHS[name]):
        for batch in loader:
            loss = model.training_step(batch)
            loss.backward()
            grad_norms.append(torch.stack([p.grad.norm() for p in model.parameters()]).norm().item())
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    return losses, grad_norms


# 16-mixed with Lightning's MixedPrecision plugin on the CPU (`plugins=[MixedPrecision("16-mixed",
# "cpu", scaler=torch.amp.GradScaler("cpu", **SCALER))]`): a large initial scale overflows the
# float16 backward, so the first steps are skipped and the scale backs off, then grows every
# `growth_interval` clean steps (and overflows again).
SCALER = {"init_scale": 2.0**24, "growth_interval": 3}


def lightning_loop(name, seed, precision, scaler=None, accelerator="cpu"):
    """The same run as `vanilla_loop`, by Lightning 2.6.6's Trainer with `precision`: the
    steps under its precision plugin (autocast, or the module and inputs converted)."""
    import lightning as L

    class Parity(L.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            return self.net.training_step(batch)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=0.02)

    class Losses(L.Callback):
        def __init__(self):
            self.losses, self.scales = [], []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if scaler is not None:
                self.scales.append(trainer.precision_plugin.scaler.get_scale())
            # As lthost logs it: float64 kept, bfloat16 as float32.
            loss = outputs["loss"].detach()
            self.losses.append((loss if loss.dtype == torch.float64 else loss.float()).item())

    net, batch_size, x, y = seeded(name, seed)
    losses = Losses()
    if scaler is None:
        args = {"precision": precision}
    else:
        from lightning.pytorch.plugins import MixedPrecision

        args = {"plugins": [MixedPrecision(precision, "cpu", scaler=torch.amp.GradScaler("cpu", **scaler))]}
    trainer = L.Trainer(max_epochs=EPOCHS[name], accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[losses], **args)
    trainer.fit(Parity(net), DataLoader(TensorDataset(x, y), batch_size=batch_size))
    if scaler is None:
        return losses.losses
    state = trainer.precision_plugin.state_dict()
    return {"losses": losses.losses, "scales": losses.scales, "state": state,
            "skipped": sum(1 for a, b in zip([scaler["init_scale"], *losses.scales], losses.scales) if b < a)}


def as_torch_ends(name, precision):
    """Lightning's losses, or torch's error where torch cannot run the model in `precision` on
    this CPU: torch 2.13's LSTM under bfloat16 autocast goes to oneDNN's LSTM primitive, which
    CPUs without AVX-512 (AVX2 only, as some machines this suite runs on) refuse ("could not
    create a primitive descriptor for the LSTM forward propagation primitive"). lthost runs the
    same kernel, so it must end with torch's error there (tests/e2e/precision.rs)."""
    try:
        return lightning_loop(name, 0, precision)
    except RuntimeError as e:
        return {"error": str(e).splitlines()[0]}


def on_gpu(out_path):
    """tools/gpu-check.sh's precision check: Lightning's losses per precision on the GPU
    (16-mixed with its default GradScaler, 16-true too)."""
    torch.backends.cudnn.deterministic = True
    runs = {name: {p: lightning_loop(name, 0, p, accelerator="cuda")
                   for p in ["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"]} for name in EPOCHS}
    with open(out_path, "w") as f:
        json.dump({"epochs": EPOCHS, "precision": runs}, f, indent=1)


def main(out_path):
    torch.set_num_threads(THREADS)
    result = {
        "torch": torch.__version__,
        "threads": THREADS,
        "epochs": EPOCHS,
        "losses": {},
        # The total gradient 2-norm before each optimizer step (the grad-norm-callback test).
        "grad_norms": {},
    }
    for name in EPOCHS:
        result["losses"][name], result["grad_norms"][name] = {}, {}
        for s in SEEDS:
            result["losses"][name][str(s)], result["grad_norms"][name][str(s)] = vanilla_loop(name, s)
    # Per precision (seed 0): Lightning's losses; `32-true` is the vanilla loop's, checked
    # here to be Lightning's too.
    result["precision"] = {}
    for name in EPOCHS:
        runs = {"32-true": lightning_loop(name, 0, "32-true"), **{p: as_torch_ends(name, p) for p in PRECISIONS}}
        if runs["32-true"] != result["losses"][name]["0"]:
            raise SystemExit(f"{name}: Lightning's 32-true losses are not the vanilla loop's")
        result["precision"][name] = runs
    result["scaler"] = {"args": SCALER, "parity-mlp": lightning_loop("parity-mlp", 0, "16-mixed", SCALER)}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out_path}: torch {torch.__version__}, seeds {SEEDS}")


if __name__ == "__main__":
    if "--accelerator=cuda" in sys.argv[2:]:
        on_gpu(sys.argv[1])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/parity.json")
