#!/usr/bin/env bash
# Builds one plugin written in JavaScript or C into target/wasm-lang/<name>.wasm, against
# the repository's WIT (world `plugin`), unless it is newer than its sources (Python plugins
# are Lightning files: `lthost build`):
#   js      componentize-js (tools/js), WASI http/fetch-event left out; plugins/<name>/app.js
#   c       wit-bindgen c bindings + clang-19 for wasm32-wasi, linked into a component by
#           wasm-component-ld (the Rust toolchain's) with the WASI reactor adapter
# Usage: tools/build-plugin.sh <js|c> <name>
set -euo pipefail
lang=$1 name=$2
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=target/wasm-lang/$name.wasm
mkdir -p target/wasm-lang
# Up to date: nothing it is built from (sources, SDK, WIT, this script, the toolchains'
# install stamps) is newer.
inputs=(wit "sdk/$lang" "plugins/$name" tools/build-plugin.sh requirements.txt tools/js/package-lock.json tools/install-c-toolchain.sh)
if [ -f "$out" ] && [ -z "$(find "${inputs[@]}" -newer "$out" -type f 2>/dev/null | head -1)" ]; then
    exit 0
fi
case $lang in
js)
    tools/js/node_modules/.bin/componentize-js "plugins/$name/app.js" -w wit -n plugin -d http fetch-event -o "$out.tmp" >/dev/null
    ;;
c)
    bindings=target/c-bindings
    mkdir -p "$bindings"
    log=$(.tools/bin/wit-bindgen c wit -w plugin --out-dir "$bindings" 2>&1) || { echo "$log" >&2; exit 1; }
    linker=$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/wasm-component-ld | head -1)
    clang-19 --target=wasm32-wasi -O2 -Wall -Werror -Wno-unused-parameter -mexec-model=reactor \
        -I sdk/c -I "$bindings" "plugins/$name"/*.c "$bindings/plugin.c" "$bindings/plugin_component_type.o" \
        -fuse-ld="$linker" -Wl,--wasi-adapter,reactor -o "$out.tmp"
    ;;
*)
    echo "build-plugin.sh: unknown language $lang (js, c; Python: lthost build)" >&2
    exit 2
    ;;
esac
mv "$out.tmp" "$out"
