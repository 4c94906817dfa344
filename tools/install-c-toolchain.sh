#!/usr/bin/env bash
# The C guest toolchain, from the registries this machine reaches: Debian's clang-19,
# lld-19 (wasm-ld), wasi-libc and the wasm32 compiler runtime; wit-bindgen-cli from
# crates.io (C generator only) into target/tools. The linker that turns the core module
# into a component, wasm-component-ld, comes with the Rust toolchain.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v clang-19 >/dev/null || [ ! -d /usr/lib/wasm32-wasi ] || ! command -v wasm-ld-19 >/dev/null; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -q clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 >/dev/null; }
fi
if [ ! -x "$root/target/tools/bin/wit-bindgen" ]; then
    cargo install wit-bindgen-cli@0.61.1 --locked --quiet --root "$root/target/tools" --no-default-features --features c
fi
ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/wasm-component-ld >/dev/null
