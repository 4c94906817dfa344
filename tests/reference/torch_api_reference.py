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


def probe_precision():
    """The probe's `torch-probe-precision` line when Lightning 2.6.6 trains it in each precision."""
    import contextlib
    import io
    import json as _json

    import lightning as L
    from model import TorchProbe

    seen = {}
    for precision in ("32-true", "bf16-mixed", "64-true", "bf16-true"):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, precision=precision, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
            trainer.fit(TorchProbe())
        line = next(line for line in err.getvalue().splitlines() if line.startswith("torch-probe-precision: "))
        seen[precision] = _json.loads(line.split(": ", 1)[1])
    torch.set_default_dtype(torch.float32)
    return seen


def main(path):
    sys.path.insert(0, str(ROOT / "tests" / "plugins" / "torch-probe"))
    import checks

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    out = {"seed": SEED, "checks": checks.run(torch), "precision": probe_precision()}
    Path(path).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
