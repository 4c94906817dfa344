"""Loads an lthost checkpoint of the parity MLP with the `safetensors` package into the
same torch.nn model (tests/reference/parity_reference.py's ParityModuleMNIST), runs it in
eval mode on the same synthetic batch lthost predicted on, and compares the outputs.

    python check_checkpoint.py CKPT PREDICTIONS SEED    (exit 0: equal to 1e-5)
"""

import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from parity_reference import ParityModuleMNIST, synthetic_mnist  # noqa: E402

ckpt, predictions, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)
torch.manual_seed(seed)
model = ParityModuleMNIST()  # the same draws as lthost's configure
x, _ = synthetic_mnist()  # the same draws as lthost's DataModule.setup
tensors = load_file(ckpt)
state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
model.load_state_dict(state, strict=True)
model.eval()
preds = load_file(predictions)
with torch.no_grad():
    worst = 0.0
    for i in range(len(preds)):
        got = preds[f"batch_{i}"]
        want = model(x[i * 128 : (i + 1) * 128])
        worst = max(worst, (got - want).abs().max().item())
print(f"{len(preds)} batches, max |lthost - torch| = {worst:.3g}, state_dict keys: {len(state)}")
sys.exit(0 if worst <= 1e-5 else 1)
