"""Converts scikit-learn's bundled 8x8 handwritten digits into digits.safetensors.

Source: the UCI ML hand-written digits dataset (Alpaydin & Kaynak, 1998), test set of
1,797 images of 8x8 pixels with values 0..16, as shipped inside scikit-learn
(`sklearn/datasets/data/digits.csv.gz`, loaded by `sklearn.datasets.load_digits`).

The rows are shuffled with a fixed seed and split 1,257 / 270 / 270 into train, val and
test. Images stay uint8 (0..16); labels are int64. Run from the repo root:

    .venv/bin/pip install scikit-learn && .venv/bin/python plugins/digits-mlp/make_data.py
"""

import numpy as np
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits

digits = load_digits()
images = digits.data.astype(np.uint8)  # (1797, 64), values 0..16
labels = digits.target.astype(np.int64)
order = np.random.RandomState(0).permutation(len(labels))
images, labels = images[order], labels[order]
splits = {"train": slice(0, 1257), "val": slice(1257, 1527), "test": slice(1527, 1797)}
tensors = {}
for name, s in splits.items():
    tensors[f"{name}_images"] = torch.from_numpy(np.ascontiguousarray(images[s]))
    tensors[f"{name}_labels"] = torch.from_numpy(np.ascontiguousarray(labels[s]))
save_file(tensors, "plugins/digits-mlp/data/digits.safetensors", metadata={"source": "sklearn.datasets.load_digits (UCI optdigits test set)"})
print({k: tuple(v.shape) for k, v in tensors.items()})
