"""Batched data augmentation in PyTorch itself, for tests/e2e/formats.rs: the mnist-cnn
example's CNN (Conv2d 1→16, 3×3, ReLU, max-pool 2, Conv2d 16→32, 3×3, ReLU, max-pool 2,
Linear 800→10; Adam 0.003) trained with `augment` on MNIST-format IDX files written here
(tests/reference/files/mnist): images / 255, normalised with MNIST's mean and std, the
last n/5 training images held out; each training batch randomly cropped (28×28 from the
image zero-padded by 2: rows `randint(0, 5, (N,))`, then columns) and flipped
(`rand(N) < 0.5`), the draw order lthost_sdk::transforms documents. Every step's loss over
two epochs, validation off (limit_val_batches = 0).

    .venv/bin/python tests/reference/transforms_reference.py tests/reference/transforms.json
"""

import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.set_num_threads(1)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "tests/reference/files/mnist")
MEAN, STD = 0.1307, 0.3081
BS, EPOCHS, N_TRAIN, N_TEST = 32, 2, 96, 10


def write_idx(path, data):
    dims = list(data.shape)
    with open(path + ".tmp", "wb") as f:
        f.write(bytes([0, 0, 0x08, len(dims)]))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        f.write(data.numpy().tobytes())
    os.replace(path + ".tmp", path)


def write_files():
    os.makedirs(DIR, exist_ok=True)
    g = torch.Generator().manual_seed(11)
    for prefix, n in [("train", N_TRAIN), ("t10k", N_TEST)]:
        write_idx(os.path.join(DIR, f"{prefix}-images-idx3-ubyte"), torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8))
        write_idx(os.path.join(DIR, f"{prefix}-labels-idx1-ubyte"), torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8))


def read_idx(name):
    with open(os.path.join(DIR, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3)
        self.conv2 = nn.Conv2d(16, 32, 3)
        self.fc = nn.Linear(800, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        return self.fc(x.view(x.shape[0], -1))


def random_crop(x, size, padding):
    x = F.pad(x, (padding, padding, padding, padding))
    n, ph, pw = x.shape[0], x.shape[-2], x.shape[-1]
    rows = torch.randint(0, ph - size + 1, (n,)).tolist()
    cols = torch.randint(0, pw - size + 1, (n,)).tolist()
    return torch.cat([x[i : i + 1, :, r : r + size, c : c + size] for i, (r, c) in enumerate(zip(rows, cols))])


def random_horizontal_flip(x, p):
    flip = (torch.rand(x.shape[0]) < p).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(-1), x)


def run(seed):
    torch.manual_seed(seed)
    model = Cnn()
    opt = torch.optim.Adam(model.parameters(), lr=0.003)
    images = ((read_idx("train-images-idx3-ubyte").float() / 255.0).view(-1, 1, 28, 28) - MEAN) / STD
    labels = read_idx("train-labels-idx1-ubyte").long()
    n = images.shape[0]
    val = min(32, n // 5)
    loader = DataLoader(TensorDataset(images[: n - val], labels[: n - val]), batch_size=BS, shuffle=True)
    losses = []
    for _ in range(EPOCHS):
        for x, y in loader:
            x = random_horizontal_flip(random_crop(x, 28, 2), 0.5)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def main(out):
    write_files()
    result = {"dir": DIR, "seeds": {str(s): run(s) for s in [0, 9]}}
    with open(out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
