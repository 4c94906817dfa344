"""Samplers and batching from torch.utils.data itself: the rows each DataLoader pass
visits (RandomSampler, WeightedRandomSampler with and without replacement,
DistributedSampler with padding and with drop_last, sequential), three passes after
`torch.manual_seed(seed)`, and three `torch.rand` values drawn after them, which show that
the generator was used exactly as torch uses it (a base seed per iterator, a seed per
RandomSampler pass). tests/e2e/data.rs compares lthost's DataLoader.

    .venv/bin/python tests/reference/data_reference.py tests/reference/data.json
"""

import json
import os
import sys

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset, WeightedRandomSampler

N = 10
WEIGHTS = [0.5, 0.1, 0.0, 2.0, 1.0, 0.3, 0.3, 0.7, 0.05, 1.5]
CASES = {
    "sequential": {"batch_size": 4},
    "sequential_drop_last": {"batch_size": 4, "drop_last": True},
    "random": {"batch_size": 4, "shuffle": True},
    "random_drop_last": {"batch_size": 3, "shuffle": True, "drop_last": True},
    "weighted_replacement": {"batch_size": 4, "weighted": {"num_samples": 7, "replacement": True}},
    "weighted_no_replacement": {"batch_size": 4, "weighted": {"num_samples": 5, "replacement": False}},
    "distributed_shuffle": {"batch_size": 2, "distributed": {"num_replicas": 3, "rank": 1, "shuffle": True, "seed": 5, "drop_last": False}},
    "distributed_drop_last": {"batch_size": 2, "distributed": {"num_replicas": 4, "rank": 3, "shuffle": True, "seed": 0, "drop_last": True}},
    "distributed_ordered": {"batch_size": 3, "distributed": {"num_replicas": 4, "rank": 2, "shuffle": False, "seed": 0, "drop_last": False}},
}


def run(case, seed):
    torch.manual_seed(seed)
    data = TensorDataset(torch.arange(N))
    sampler = None
    if "weighted" in case:
        w = case["weighted"]
        sampler = WeightedRandomSampler(WEIGHTS, w["num_samples"], replacement=w["replacement"])
    if "distributed" in case:
        sampler = DistributedSampler(data, **case["distributed"])
    loader = DataLoader(data, batch_size=case["batch_size"], shuffle=case.get("shuffle", False), drop_last=case.get("drop_last", False), sampler=sampler)
    passes = []
    for epoch in range(3):
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        passes.append([b[0].tolist() for b in loader])
    return {"passes": passes, "after": torch.rand(3).tolist()}


def npz_files(out_dir):
    """`.npz` archives written by NumPy itself (stored and deflated), and their contents."""
    import numpy as np

    os.makedirs(out_dir, exist_ok=True)
    arrays = {
        "images": (np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)),
        "weights": np.linspace(-1.5, 2.25, 7).astype(np.float32),
        "labels": np.array([3, -1, 7], dtype=np.int64),
        "mask": np.array([True, False, True]),
        "doubles": np.array([[1e-300, 2.5], [-0.0, 3.0]], dtype=np.float64),
    }
    np.savez(os.path.join(out_dir, "arrays.npz"), **arrays)
    np.savez_compressed(os.path.join(out_dir, "arrays_compressed.npz"), **arrays)
    return {k: {"shape": list(v.shape), "values": v.astype(np.float64).ravel().tolist()} for k, v in arrays.items()}


def main(path):
    out = {"torch": torch.__version__, "n": N, "weights": WEIGHTS, "cases": {}}
    out["npz"] = npz_files(os.path.join(os.path.dirname(os.path.abspath(path)), "npz"))
    for name, case in CASES.items():
        out["cases"][name] = {"case": case, "seeds": {str(s): run(case, s) for s in (0, 7)}}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {path}: {len(CASES)} samplers")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/data.json")
