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


def vanilla_loop(name, seed):
    torch.manual_seed(seed)
    if name == "parity-rnn":
        model, batch_size = ParityModuleRNN(), 30
        x, y = average_dataset()
    else:
        model, batch_size = ParityModuleMNIST(), 128
        x, y = synthetic_mnist()
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
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out_path}: torch {torch.__version__}, seeds {SEEDS}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/parity.json")
