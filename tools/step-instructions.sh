#!/bin/bash
# Instructions per training step of plugins, counted by valgrind's cachegrind (deterministic,
# where a shared machine's timings are too noisy to compare two builds of a plugin): each
# plugin is trained for 1 and for 4 epochs under `valgrind --tool=cachegrind --cache-sim=no`
# and the difference is divided by the steps of 3 epochs (start-up cancels out).
#
#   tools/step-instructions.sh digits target/plugins/digits-mlp.wasm target/plugins/python-digits.wasm
#   tools/step-instructions.sh transformer target/plugins/tiny-transformer.wasm target/plugins/python-tiny-transformer.wasm
#
# Needs valgrind (`apt-get install valgrind`) and a built lthost; ~1–2 min per plugin.
set -euo pipefail
kind=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
lthost=$root/target/release/lthost
export LTHOST_TRUSTED_KEYS=${LTHOST_TRUSTED_KEYS:-$root/.lthost/trusted}
export LTHOST_CACHE_DIR=${LTHOST_CACHE_DIR:-$root/target/component-cache}
case $kind in
  digits) extra=(--config "$root/plugins/digits-mlp/run.toml" --set trainer.limit_val_batches=0); steps=40 ;;
  transformer) extra=(--seed 42 --set trainer.logger=false); steps=16 ;;
  *) echo "usage: $0 digits|transformer PLUGIN.wasm..." >&2; exit 2 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
for w in "$@"; do
  w=$(realpath "$w")
  fit=("$lthost" fit "$w" --accelerator cpu --no-progress-bar --threads 1 "${extra[@]}" --set trainer.enable_checkpointing=false)
  "${fit[@]}" --max-epochs 1 >/dev/null 2>&1  # compiled into the cache first
  declare -A ir
  for e in 1 4; do
    out=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "${fit[@]}" --max-epochs $e 2>&1) || {
      echo "$out" | tail -5 >&2
      exit 1
    }
    ir[$e]=$(echo "$out" | grep "I *refs" | tr -d ', ' | sed 's/.*refs://')
  done
  echo "$(basename "$w" .wasm): $(((ir[4] - ir[1]) / (3 * steps))) instructions per step"
done
