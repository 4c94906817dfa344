"""The checks of tests/plugins/torch-probe/checks.py run in torch itself, from
torch.manual_seed(SEED) (the probe runs with `--seed SEED`), for tests/e2e/lightning_files.rs.
Run by `make reference`:

    .venv/bin/python tests/reference/torch_api_reference.py tests/reference/torch_api.json
"""

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SEED = 42


def main(path):
    sys.path.insert(0, str(ROOT / "tests" / "plugins" / "torch-probe"))
    import checks

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    out = {"seed": SEED, "checks": checks.run(torch)}
    Path(path).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
