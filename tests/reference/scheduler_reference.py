"""Reference learning rates (and OneCycleLR's momentum) from torch.optim.lr_scheduler,
for 100 steps of each scheduler lthost implements.

    .venv/bin/python tests/reference/scheduler_reference.py tests/reference/schedulers.json
"""

import json
import sys

import torch
from torch.optim import SGD, Adam
from torch.optim import lr_scheduler as S

STEPS = 100


def plateau_metric(i):
    return 1.0 / (1 + i) if i < 20 else 0.05 + 0.001 * (i % 3)


CASES = {
    "step": (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
    "multi_step": (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda o: S.MultiStepLR(o, milestones=[10, 25, 25, 60], gamma=0.3)),
    "exponential": (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda o: S.ExponentialLR(o, gamma=0.97)),
    "cosine": (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=0.001)),
    "linear": (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=40)),
    "one_cycle_sgd": (lambda p: SGD(p, lr=0.1, momentum=0.9), lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=STEPS)),
    "one_cycle_adam_linear_3phase": (
        lambda p: Adam(p, lr=0.01),
        lambda o: S.OneCycleLR(o, max_lr=0.05, total_steps=STEPS, anneal_strategy="linear", three_phase=True),
    ),
    "plateau": (
        lambda p: SGD(p, lr=0.1, momentum=0.9),
        lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=3, threshold=0.01, cooldown=2, min_lr=0.001),
    ),
}


def momentum(opt):
    g = opt.param_groups[0]
    return g["betas"][0] if "betas" in g else g["momentum"]


def run(name):
    make_opt, make_sched = CASES[name]
    opt = make_opt([torch.nn.Parameter(torch.zeros(1))])
    sched = make_sched(opt)
    lrs, moms = [opt.param_groups[0]["lr"]], [momentum(opt)]
    for i in range(STEPS - 1):
        opt.step()
        if name == "plateau":
            sched.step(plateau_metric(i))
        else:
            sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(momentum(opt))
    return {"lr": lrs, "momentum": moms, "plateau_metrics": [plateau_metric(i) for i in range(STEPS - 1)]}


def main(path):
    with open(path, "w") as f:
        json.dump({"torch": torch.__version__, "cases": {n: run(n) for n in CASES}}, f)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/reference/schedulers.json")
