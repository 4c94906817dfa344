#!/usr/bin/env bash
# The C guest toolchain, from the registries this machine reaches: Debian's clang-19,
# lld-19 (wasm-ld), wasi-libc and the wasm32 compiler runtime; wit-bindgen-cli from
# crates.io (C generator only) into .tools/. The linker that turns the core module into a
# component, wasm-component-ld, comes with the Rust toolchain. Idempotent: installs only
# what is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || { echo "install-c-toolchain: need root or sudo to install ${missing[*]} with apt" >&2; exit 1; }
        sudo=sudo
    fi
    $sudo apt-get install -y -q "${missing[@]}" >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
version=0.61.1
# Built unoptimised (a generator run once per C plugin build, in milliseconds either way):
# 1 min 54 s instead of 3 min 48 s of a fresh clone's `make test` here.
if ! "$root/.tools/bin/wit-bindgen" --version 2>/dev/null | grep -q "$version"; then
    CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 \
        cargo install "wit-bindgen-cli@$version" --locked --quiet --force --root "$root/.tools" --no-default-features --features c
fi
ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/wasm-component-ld >/dev/null
