"""Reference values of torch.nn.init for the SDK's `init` (tests/plugins/aten-probe,
`init_check`): from torch.manual_seed(SEED), each function in turn on a fresh 16×8 float32
tensor, as the probe calls them. Run by `make reference`:

    .venv/bin/python tests/reference/init_reference.py tests/reference/init.json
"""

import json
import sys

import torch
from torch.nn import init

SEED = 3
STEPS = [
    ("uniform_", lambda t: init.uniform_(t, -0.5, 0.5)),
    ("normal_", lambda t: init.normal_(t, 0.1, 2.0)),
    ("trunc_normal_", lambda t: init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)),
    # a tail holding ~6.5% of the mass: torch's accept-reject branch
    ("trunc_normal_tail", lambda t: init.trunc_normal_(t, 0.0, 1.0, 1.5, 3.0)),
    ("xavier_uniform_", lambda t: init.xavier_uniform_(t, gain=1.5)),
    ("xavier_normal_", lambda t: init.xavier_normal_(t, gain=0.5)),
    ("kaiming_uniform_", lambda t: init.kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="relu")),
    ("kaiming_normal_", lambda t: init.kaiming_normal_(t, a=0, mode="fan_out", nonlinearity="relu")),
    ("kaiming_uniform_leaky", lambda t: init.kaiming_uniform_(t, a=0.1, mode="fan_in", nonlinearity="leaky_relu")),
    ("orthogonal_", lambda t: init.orthogonal_(t, gain=1.0)),
    ("constant_", lambda t: init.constant_(t, 0.3)),
    ("ones_", init.ones_),
    ("zeros_", init.zeros_),
]


def main(path):
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    out = {}
    for name, f in STEPS:
        t = torch.empty(16, 8)
        f(t)
        out[name] = t.flatten().tolist()
    with open(path, "w") as fh:
        json.dump({"seed": SEED, "values": out}, fh)
    print(f"init reference: {len(out)} functions")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/init.json")
