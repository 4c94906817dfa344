#!/usr/bin/env bash
# Every CUDA path of lthost, checked against torch and Lightning on the same GPU. Never part of
# CI (CI has no GPU): run it by hand on a machine with an NVIDIA GPU where `make` works.
#
#     tools/gpu-check.sh            # builds what is missing, then prints one line per check
#
# Checks (each prints PASS / FAIL / SKIP and why; the script fails if one fails):
#   placement   --accelerator cuda trains on the GPU (the run says so), and the digits MLP's
#               per-step train_loss and val_loss equal Lightning's on the same GPU and seeds
#               (tests/reference/digits_reference.py --accelerator=cuda; dropout and the
#               sanity check draw from the CUDA generator as in Lightning)
#   generator   a fit stopped after 1 epoch and resumed from its checkpoint gives the uninterrupted
#               fit's losses (the checkpoint keeps and restores the CUDA generator's state)
#   prefetch    trainer.prefetch_batches = 2 (pinned host memory, non-blocking copies) gives the
#               same losses as no prefetch
#   stats       DeviceStatsMonitor logs the GPU's memory and utilisation (NVML)
#   batches     every batch hook of fit, test and predict sees the batch on the GPU (Lightning's
#               test_callback_batch_on_device; the native module's in-file test, run on $ACC)
#   precision   parity-mlp and parity-rnn in every precision (bf16-mixed and 16-mixed under CUDA
#               autocast, 16-mixed with its GradScaler; bf16-true, 16-true, 64-true) give
#               Lightning's per-step losses on the same GPU (tests/reference/parity_reference.py
#               --accelerator=cuda); prints a table of the largest differences
#   nccl        DDP on CUDA through torch's ProcessGroupNCCL (loaded from the shim
#               host/csrc/nccl_backend.cpp): tests/plugins/lit-ddp (an unmodified Lightning file,
#               sync_dist values, the sanity check, validation) with strategy ddp on
#               min(2, GPUs) processes, one GPU each, gives every metrics.csv value of Lightning's
#               `Trainer(strategy="ddp", accelerator="cuda")` on the same GPUs (1e-5), the run
#               says `distributed_backend=nccl` and ends with the same weights on every rank;
#               then the same with `process_group_backend = "gloo"` (Gloo taking CUDA tensors)
#               against Lightning's `DDPStrategy(process_group_backend="gloo")`. One GPU checks a
#               world of 1 (NCCL refuses two ranks on one GPU, and Lightning, like lthost, gives
#               each local rank its own GPU). The dry run: 2 processes, Gloo, on the CPU.
#
# Where it cannot run: the H200 the `device` tool lends has no network (no crates, no PyPI),
# no Rust toolchain and torch 2.11, while lthost builds against torch 2.13 (tch 0.26) from
# PyPI; a binary built here needs libtorch 2.13's CUDA libraries (GBs), over what a call
# carries. Running there needs lthost built against the device's own libtorch first.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${GPU_CHECK_DIR:-$ROOT/target/gpu-check}
# Its own directory only: a fresh one, or one it made before (marked .gpu-check).
if [ -e "$WORK" ] && [ ! -f "$WORK/.gpu-check" ]; then
    echo "gpu-check: $WORK exists and is not a gpu-check directory; pick another GPU_CHECK_DIR" >&2
    exit 2
fi
rm -rf "$WORK" && mkdir -p "$WORK" && touch "$WORK/.gpu-check"
FAILED=0

say() { printf '%-10s %-4s %s\n' "$1" "$2" "$3"; [ "$2" = FAIL ] && FAILED=1; return 0; }

# GPU_CHECK_ACCELERATOR=cpu runs the same checks on the CPU: a dry run of this script where
# there is no GPU (what the placement and stats checks read is then the CPU's).
ACC=${GPU_CHECK_ACCELERATOR:-cuda}
if [ "$ACC" = cuda ]; then
    nvidia-smi -L || { echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L failed)" >&2; exit 2; }
    DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    USED="used: true"
    STAT=cuda_memory_used_mb
else
    DEVICE="the CPU (dry run)"
    USED="used: false"
    STAT=cpu_percent
fi
make host plugins >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; echo "gpu-check: build failed" >&2; exit 1; }
export LIBTORCH_USE_PYTORCH=1 LTHOST_TRUSTED_KEYS=$ROOT/.lthost/trusted
PY=$ROOT/.venv/bin/python
LTHOST=$ROOT/target/release/lthost
if [ "$ACC" = cuda ]; then
    $PY -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__, torch.cuda.get_device_name(0))' || exit 1
fi

# lthost fit of the digits MLP in directory $1 (created), further arguments after.
fit() {
    local dir=$1
    shift
    mkdir -p "$dir"
    (cd "$dir" && "$LTHOST" fit "$ROOT/target/plugins/digits-mlp.wasm" --data-dir "$ROOT/plugins/digits-mlp/data" \
        --accelerator "$ACC" --threads 1 --log-every-n-steps 1 --no-progress-bar "$@") >"$dir/out.log" 2>&1
}

# Compares a column of metrics.csv files: `same COLUMN TOLERANCE A.csv B.csv [SKIP_A]`, the
# first SKIP_A rows of A left out (the epochs a resumed run did not train).
same() {
    $PY - "$@" <<'EOF'
import csv, sys
col, tol, a, b = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
skip = int(sys.argv[5]) if len(sys.argv) > 5 else 0
read = lambda p: [float(r[col]) for r in csv.DictReader(open(p)) if r.get(col)]
x, y = read(a)[skip:], read(b)
if len(x) != len(y) or not x:
    sys.exit(f"{col}: {len(x)} values vs {len(y)}")
worst = max(abs(p - q) for p, q in zip(x, y))
if worst > tol:
    sys.exit(f"{col}: differs by {worst:.3g} (> {tol:g})")
print(f"{col}: {len(x)} values, largest difference {worst:.3g}")
EOF
}

# placement: the same losses as Lightning on this GPU.
ref=$WORK/lightning.json
if $PY tests/reference/digits_reference.py "$ref" --accelerator="$ACC" >"$WORK/lightning.log" 2>&1; then
    epochs=$($PY -c "import json; print(json.load(open('$ref'))['epochs'])")
    msg=""
    for seed in $($PY -c "import json; print(' '.join(json.load(open('$ref'))['seeds']))"); do
        d=$WORK/placement-$seed
        if ! fit "$d" --seed "$seed" --max-epochs "$epochs"; then msg="seed $seed: fit failed ($(tail -1 "$d/out.log"))"; break; fi
        grep -q "$USED" "$d/out.log" || { msg="seed $seed: the run did not say '$USED'"; break; }
        $PY -c "
import csv, json
ref = json.load(open('$ref'))['seeds']['$seed']
rows = list(csv.DictReader(open('$d/lightning_logs/version_0/metrics.csv')))
with open('$d/ref.csv', 'w') as f:
    w = csv.writer(f); w.writerow(['train_loss', 'val_loss'])
    n = max(len(ref['train_loss']), len(ref['val_loss']))
    for i in range(n):
        w.writerow([ref['train_loss'][i] if i < len(ref['train_loss']) else '', ref['val_loss'][i] if i < len(ref['val_loss']) else ''])
"
        for col in train_loss val_loss; do
            r=$(same $col 1e-5 "$d/lightning_logs/version_0/metrics.csv" "$d/ref.csv" 2>&1) || { msg="seed $seed: $r"; break 2; }
        done
    done
    [ -z "$msg" ] && say placement PASS "per-step losses equal Lightning's on $DEVICE (1e-5)" \
        || say placement FAIL "$msg"
else
    say placement FAIL "Lightning on CUDA failed: $(tail -1 "$WORK/lightning.log")"
fi

# generator: resume from a checkpoint after epoch 1 gives the uninterrupted run's losses.
full=$WORK/generator-full
part=$WORK/generator-resumed
if fit "$full" --seed 7 --max-epochs 3 && fit "$part" --seed 7 --max-epochs 1 &&
    ckpt=$(ls "$part"/lightning_logs/version_0/checkpoints/*.ckpt 2>/dev/null | head -1) && [ -n "$ckpt" ] &&
    (cd "$part" && "$LTHOST" fit "$ROOT/target/plugins/digits-mlp.wasm" --data-dir "$ROOT/plugins/digits-mlp/data" \
        --accelerator "$ACC" --threads 1 --log-every-n-steps 1 --no-progress-bar --seed 7 --max-epochs 3 --ckpt-path "$ckpt") >"$part/resume.log" 2>&1; then
    n1=$($PY -c "import csv; print(sum(1 for r in csv.DictReader(open('$part/lightning_logs/version_0/metrics.csv')) if r.get('train_loss')))")
    resumed=$(ls -d "$part"/lightning_logs/version_* | sort -V | tail -1)
    r=$(same train_loss 0 "$full/lightning_logs/version_0/metrics.csv" "$resumed/metrics.csv" "$n1" 2>&1) &&
        say generator PASS "resumed epochs 2-3 equal the uninterrupted run: $r" || say generator FAIL "$r"
else
    say generator FAIL "a fit or the resume failed: $(cat "$full/out.log" "$part/out.log" "$part/resume.log" 2>/dev/null | grep -m1 '^error')"
fi

# prefetch: pinned, non-blocking batches give the same losses.
if fit "$WORK/prefetch-0" --seed 11 --max-epochs 2 && fit "$WORK/prefetch-2" --seed 11 --max-epochs 2 --set trainer.prefetch_batches=2; then
    r=$(same train_loss 0 "$WORK/prefetch-0/lightning_logs/version_0/metrics.csv" "$WORK/prefetch-2/lightning_logs/version_0/metrics.csv" 2>&1) &&
        say prefetch PASS "$r" || say prefetch FAIL "$r"
else
    say prefetch FAIL "a fit failed: $(tail -1 "$WORK/prefetch-2/out.log")"
fi

# stats: NVML through DeviceStatsMonitor.
d=$WORK/stats
if fit "$d" --seed 1 --max-epochs 1 --set callbacks.device_stats_monitor.cpu_stats=true; then
    head -1 "$d/lightning_logs/version_0/metrics.csv" | grep -q "$STAT" &&
        say stats PASS "metrics.csv has $STAT ($(head -1 "$d/lightning_logs/version_0/metrics.csv" | tr ',' '\n' | grep -c -E 'cuda|gpu') GPU columns)" ||
        say stats FAIL "no $STAT column in metrics.csv"
else
    say stats FAIL "fit failed: $(tail -1 "$d/out.log")"
fi

# batches: the native module's batch hooks see the batch on the run's device.
if LTHOST_TEST_ACCELERATOR=$ACC cargo test --release -p lthost --lib every_batch_hook_sees_the_batch_on_the_runs_device \
    >"$WORK/batches.log" 2>&1; then
    say batches PASS "fit, test and predict batch hooks see the batch on $ACC"
else
    say batches FAIL "$(grep -m1 -E 'panicked|error' "$WORK/batches.log")"
fi

# precision: every precision against Lightning on this GPU, a line per model and precision
# (the dry run compares with the CPU references `make test` uses).
pref=$WORK/precision.json
if [ "$ACC" = cuda ]; then
    $PY tests/reference/parity_reference.py "$pref" --accelerator=cuda >"$WORK/precision-lightning.log" 2>&1
else
    $PY -c "import json; d = json.load(open('tests/reference/parity.json')); json.dump({'epochs': d['epochs'], 'precision': d['precision']}, open('$pref', 'w'))" \
        >"$WORK/precision-lightning.log" 2>&1
fi
if [ $? -eq 0 ]; then
    msg=""
    printf '  %-11s %-11s %s\n' model precision "largest |lthost - Lightning| over the steps"
    for model in parity-mlp parity-rnn; do
        epochs=$($PY -c "import json; print(json.load(open('$pref'))['epochs']['$model'])")
        for p in $($PY -c "import json; print(' '.join(json.load(open('$pref'))['precision']['$model']))"); do
            d=$WORK/precision-$model-$p
            mkdir -p "$d"
            if ! (cd "$d" && "$LTHOST" fit "$ROOT/target/plugins/$model.wasm" --accelerator "$ACC" --threads 1 --seed 0 \
                --max-epochs "$epochs" --log-every-n-steps 1 --no-progress-bar --precision "$p") >"$d/out.log" 2>&1; then
                msg="$model $p: fit failed ($(grep -m1 '^error' "$d/out.log"))"
                printf '  %-11s %-11s FAILED\n' "$model" "$p"
                continue
            fi
            $PY -c "
import csv, json
ref = json.load(open('$pref'))['precision']['$model']['$p']
with open('$d/ref.csv', 'w') as f:
    w = csv.writer(f); w.writerow(['train_loss']); [w.writerow([v]) for v in ref]
"
            r=$(same train_loss 1e-5 "$d/lightning_logs/version_0/metrics.csv" "$d/ref.csv" 2>&1) || msg="$model $p: $r"
            printf '  %-11s %-11s %s\n' "$model" "$p" "$r"
        done
    done
    [ -z "$msg" ] && say precision PASS "every precision's per-step losses equal Lightning's on $DEVICE (1e-5)" \
        || say precision FAIL "$msg"
else
    say precision FAIL "Lightning's precision runs failed: $(tail -1 "$WORK/precision-lightning.log")"
fi
# nccl: DDP on CUDA (ProcessGroupNCCL, then Gloo on CUDA tensors) against Lightning's ddp.
if [ "$ACC" = cuda ]; then
    NPROC=$($PY -c 'import torch; print(min(2, torch.cuda.device_count()))')
    BACKENDS="nccl gloo"
else
    NPROC=2
    BACKENDS="gloo"
fi
msg=""
report=""
for backend in $BACKENDS; do
    d=$WORK/ddp-$backend
    mkdir -p "$d"
    if ! OMP_NUM_THREADS=1 $PY tests/reference/ddp_reference.py --lightning-file-worker "$d/ref" lit-ddp 0 "$ACC" "$NPROC" "$backend" \
        >"$d/lightning.log" 2>&1; then
        msg="$backend: Lightning's ddp failed ($(tail -1 "$d/lightning.log"))"
        break
    fi
    if ! (cd "$d" && "$LTHOST" fit "$ROOT/target/plugins/lit-ddp.wasm" --seed 0 --max-epochs 2 --threads 1 --no-progress-bar \
        --log-every-n-steps 1 --accelerator "$ACC" --strategy ddp --devices "$NPROC" \
        --set "trainer.process_group_backend=\"$backend\"" --set trainer.ddp_timeout_s=120) >"$d/out.log" 2>&1; then
        msg="$backend: lthost failed ($(grep -m1 '^error' "$d/out.log"))"
        break
    fi
    grep -q "distributed_backend=$backend" "$d/out.log" || { msg="$backend: the run did not say distributed_backend=$backend"; break; }
    grep -q "the same weights on every rank" "$d/out.log" || { msg="$backend: the ranks' weights differ"; break; }
    r=$($PY - "$d/ref/lit-ddp.json" "$d/lightning_logs/version_0/metrics.csv" 2>&1 <<'EOF'
import csv, json, sys
want = json.load(open(sys.argv[1]))
got = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(open(sys.argv[2]))]
if len(got) != len(want):
    sys.exit(f"{len(got)} metrics.csv rows vs Lightning's {len(want)}")
worst, n = 0.0, 0
for i, (g, w) in enumerate(zip(got, want)):
    if set(g) != set(w):
        sys.exit(f"row {i}: columns {sorted(g)} vs Lightning's {sorted(w)}")
    for k in w:
        worst, n = max(worst, abs(g[k] - w[k])), n + 1
if worst > 1e-5:
    sys.exit(f"values differ by {worst:.3g} (> 1e-5)")
print(f"{n} values, largest difference {worst:.3g}")
EOF
    ) || { msg="$backend: $r"; break; }
    report="$report $backend: $r;"
done
[ -z "$msg" ] && say nccl PASS "lit-ddp on $NPROC process(es) of $DEVICE equals Lightning's ddp:$report" || say nccl FAIL "$msg"
exit $FAILED
