#!/bin/bash
# Instructions per training step of plugins, counted by valgrind's cachegrind (deterministic,
# where a shared machine's timings are too noisy to compare two builds of a plugin): each
# plugin is trained for 1 and for 4 epochs under `valgrind --tool=cachegrind --cache-sim=no`
# and the difference is divided by the steps of 3 epochs (start-up cancels out).
#
#   tools/step-instructions.sh digits target/plugins/digits-mlp.wasm target/plugins/python-digits.wasm
#   tools/step-instructions.sh transformer target/plugins/tiny-transformer.wasm target/plugins/python-tiny-transformer.wasm
#
# `native WORKLOAD` compares lthost with make bench's native baseline instead
# (host/examples/native_bench.rs; parity-mlp, parity-rnn or tiny-transformer), as make bench
# runs both (1 thread, no logger, checkpointing and summary off):
#
#   tools/step-instructions.sh native tiny-transformer
#
# Needs valgrind (`apt-get install valgrind`) and a built lthost (and native_bench:
# `cargo build --release -p lthost --example native_bench`); ~1–2 min per plugin.
set -euo pipefail
kind=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
lthost=$root/target/release/lthost
export LTHOST_TRUSTED_KEYS=${LTHOST_TRUSTED_KEYS:-$root/.lthost/trusted}
export LTHOST_CACHE_DIR=${LTHOST_CACHE_DIR:-$root/target/component-cache}
instructions() {
  local out
  out=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1) || {
    echo "$out" | tail -5 >&2
    exit 1
  }
  echo "$out" | grep "I *refs" | tr -d ', ' | sed 's/.*refs://'
}
if [ "$kind" = native ]; then
  w=${1:?usage: $0 native parity-mlp|parity-rnn|tiny-transformer}
  case $w in
    parity-mlp) steps=5 ;;
    parity-rnn) steps=10 ;;
    tiny-transformer) steps=16 ;;
    *) echo "native: parity-mlp, parity-rnn or tiny-transformer" >&2; exit 2 ;;
  esac
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  fit=("$lthost" fit "$root/target/plugins/$w.wasm" --accelerator cpu --threads 1 --seed 42 --no-progress-bar
    --set trainer.enable_checkpointing=false --set trainer.enable_model_summary=false --set trainer.logger=false)
  # Compiled into the cache first, under valgrind: it reports other CPU features than the
  # machine's, so a component compiled outside it is compiled again in the first counted run.
  instructions "${fit[@]}" --max-epochs 1 >/dev/null
  n1=$(instructions "$root/target/release/examples/native_bench" "$w" 1 1 42)
  n4=$(instructions "$root/target/release/examples/native_bench" "$w" 4 1 42)
  l1=$(instructions "${fit[@]}" --max-epochs 1)
  l4=$(instructions "${fit[@]}" --max-epochs 4)
  echo "$w: native $(((n4 - n1) / (3 * steps))), lthost $(((l4 - l1) / (3 * steps))) instructions per step;" \
    "lthost / native $(awk "BEGIN { printf \"%.3f\", ($l4 - $l1) / ($n4 - $n1) }")"
  exit 0
fi
case $kind in
  digits) extra=(--config "$root/plugins/digits-mlp/run.toml" --set trainer.limit_val_batches=0); steps=40 ;;
  transformer) extra=(--seed 42 --set trainer.logger=false); steps=16 ;;
  *) echo "usage: $0 digits|transformer PLUGIN.wasm..." >&2; exit 2 ;;
esac
plugins=()
for w in "$@"; do
  plugins+=("$(realpath "$w")") # before leaving the caller's directory
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for w in "${plugins[@]}"; do
  fit=("$lthost" fit "$w" --accelerator cpu --no-progress-bar --threads 1 "${extra[@]}" --set trainer.enable_checkpointing=false)
  instructions "${fit[@]}" --max-epochs 1 >/dev/null  # compiled into the cache first, under valgrind (above)
  declare -A ir
  for e in 1 4; do
    ir[$e]=$(instructions "${fit[@]}" --max-epochs $e)
  done
  echo "$(basename "$w" .wasm): $(((ir[4] - ir[1]) / (3 * steps))) instructions per step"
done
