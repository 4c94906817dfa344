# lthost — `make run` trains the default example; `make test` runs every test.
# Both install what is missing (a project venv with torch, the wasm32-wasip2 target) and
# build once, with one cargo profile (release) and one target dir.

SHELL := /bin/bash
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CARGO ?= cargo
PLUGINS := digits-mlp parity-rnn parity-mlp faulty hook-recorder gan jsonl-logger loss-guard-callback grad-norm-callback mnist-cnn stream-regression tiny-transformer nanogpt resnet adversary aten-probe state-hoarder
# Plugins in other guest languages (tools/build-plugin.sh <lang> <name>), against the same WIT.
LANG_PLUGINS := js:js-digits c:c-digits
# Plain Lightning files (model.py), built by `lthost build` (precompiled into the tests' cache).
LIGHTNING_PLUGINS := plugins/python-digits plugins/python-tiny-transformer plugins/lit-boring plugins/lit-autoencoder plugins/lit-nanogpt plugins/lit-resnet plugins/lit-mnist tests/plugins/torch-probe tests/plugins/lit-lion tests/plugins/lit-manual tests/plugins/lit-augment tests/plugins/lit-stream tests/plugins/lit-lbfgs tests/plugins/lit-classifier tests/plugins/lit-multi-val tests/plugins/lit-hparams tests/plugins/lit-ddp tests/plugins/lit-main tests/plugins/lit-quickstart tests/plugins/lit-script tests/plugins/lit-demos tests/plugins/lit-callbacks
PLUGIN_DIR := target/plugins
# The SDKs' typed ATen bindings, generated from torch's operator schemas (the rule below).
GENERATED_OPS := sdk/src/aten_ops.rs sdk/python/lthost/aten_ops.py sdk/c/lthost_aten.h sdk/python/torch/_schemas.py
LTHOST := target/release/lthost
# A development signing key, made on first use; plugins built here are signed with it and
# tests and `make run` trust it (and nothing else).
DEVKEY := .lthost/dev.key
TRUSTED := .lthost/trusted
# Test threads: two lthost processes at a time on a 2-core machine.
TEST_THREADS ?= 2

.PHONY: run test setup host plugins reference bench clean-logs

# The shared-artifact path: the example is built, given its manifest, signed with a local
# development key (made on first use), and run trusting only that key.
run: host plugins
	$(LTHOST) run $(PLUGIN_DIR)/digits-mlp.wasm --config plugins/digits-mlp/run.toml --trusted-keys $(TRUSTED)

test: host plugins reference .stamps/test-servers
	$(CARGO) fmt --all -- --check
	$(PY) tools/gen_ops.py --check
	$(CARGO) test --release -p lthost -- --test-threads $(TEST_THREADS)

setup: .stamps/venv .stamps/wasm-target .stamps/rustfmt tools/js/node_modules/.installed .tools/c-toolchain.installed

# uv (from PyPI) installs the requirements: 57 s instead of pip's 3 min 25 s in a fresh clone
# here, bytecode compiled as pip does (without it every `import lightning` takes 29 s, not 10).
UV_VERSION := 0.13.9
.stamps/venv: requirements.txt
	@mkdir -p .stamps
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements.txt
	@touch $@

# Servers the tests start on localhost (docker-registry, from Debian).
.stamps/test-servers: tools/install-test-servers.sh
	@mkdir -p .stamps
	tools/install-test-servers.sh
	@touch $@

.stamps/rustfmt:
	@mkdir -p .stamps
	rustup component add rustfmt
	@touch $@

.stamps/wasm-target:
	@mkdir -p .stamps
	rustup target add wasm32-wasip2
	@touch $@

# componentize-js and its engine, from the npm registry (pinned by tools/js/package-lock.json);
# the stamp lives with what it stands for.
tools/js/node_modules/.installed: tools/js/package-lock.json
	npm ci --prefix tools/js --no-audit --no-fund --loglevel=error
	@touch $@

# clang-19 + wasi-libc (Debian), wit-bindgen-cli (crates.io) into .tools/.
.tools/c-toolchain.installed: tools/install-c-toolchain.sh
	tools/install-c-toolchain.sh
	@mkdir -p .tools && touch $@

# After the generated bindings: the host embeds the Python SDK (build.rs watches it), so a
# regeneration after the host build would rebuild it, and its C++, once more in `cargo test`.
host: setup $(GENERATED_OPS)
	$(CARGO) build --release -p lthost

# The SDKs' typed ATen bindings (Rust, Python, the table in the JS SDK, C), generated from
# torch's operator schemas (committed; regenerated together when the generators, the
# denylist or torch changes).
$(GENERATED_OPS) &: tools/gen_ops.py tools/gen_ops_sdks.py host/src/engine/aten_denylist.rs .stamps/venv
	$(PY) tools/gen_ops.py
	@touch $(GENERATED_OPS)

plugins: setup host $(DEVKEY) $(GENERATED_OPS)
	$(CARGO) build --release --target wasm32-wasip2 $(addprefix -p ,$(PLUGINS))
	@mkdir -p $(PLUGIN_DIR)
	@for p in $(PLUGINS); do \
		m=plugins/$$p/lthost.toml; [ -f $$m ] || m=tests/plugins/$$p/lthost.toml; \
		$(LTHOST) manifest target/wasm32-wasip2/release/$${p//-/_}.wasm --from $$m --output $(PLUGIN_DIR)/$$p.wasm >/dev/null && \
		$(LTHOST) sign $(PLUGIN_DIR)/$$p.wasm --key $(DEVKEY) >/dev/null || exit 1; \
	done
	@for lp in $(LANG_PLUGINS); do \
		lang=$${lp%%:*}; p=$${lp#*:}; \
		m=plugins/$$p/lthost.toml; [ -f $$m ] || m=tests/plugins/$$p/lthost.toml; \
		tools/build-plugin.sh $$lang $$p && \
		$(LTHOST) manifest target/wasm-lang/$$p.wasm --from $$m --output $(PLUGIN_DIR)/$$p.wasm >/dev/null && \
		$(LTHOST) sign $(PLUGIN_DIR)/$$p.wasm --key $(DEVKEY) >/dev/null || exit 1; \
	done
	@for d in $(LIGHTNING_PLUGINS); do \
		out=$(PLUGIN_DIR)/$$(basename $$d).wasm; \
		if [ ! -f $$out ] || [ -n "$$(find $$d sdk/python wit -newer $$out -type f -not -path '*/__pycache__/*' | head -1)" ]; then \
			LTHOST_CACHE_DIR=target/component-cache $(LTHOST) build $$d/model.py --key $(DEVKEY) -o $$out >/dev/null || exit 1; \
		fi; \
	done
	@echo "plugins: $(PLUGINS) $(foreach lp,$(LANG_PLUGINS),$(lastword $(subst :, ,$(lp)))) $(notdir $(LIGHTNING_PLUGINS)) → $(PLUGIN_DIR), with manifests, signed with $(DEVKEY)"

$(DEVKEY): | host
	$(LTHOST) keygen --out .lthost/dev
	@mkdir -p $(TRUSTED) && chmod 0755 $(TRUSTED) && cp .lthost/dev.pub $(TRUSTED)/dev.pub && chmod 0644 $(TRUSTED)/dev.pub

# Reference results from PyTorch and Lightning themselves (the parity oracle): each script
# with the file it writes, the longest first. tools/run_references.py runs them two at a
# time, forked from one process that has imported torch and Lightning (3 min instead of 7 in
# a fresh clone here), the DDP one alone, the OpInfo one in a new interpreter (see the
# script); the case-name check first.
REFERENCES := \
	tests/reference/lightning_files_reference.py=tests/reference/lightning_files.json \
	tests/reference/opinfo_reference.py=tests/reference/opinfo.json \
	tests/reference/lightning_reference.py=tests/reference/lightning.json \
	tests/reference/main_block_reference.py=tests/reference/main_block.json \
	tests/reference/parity_reference.py=tests/reference/parity.json \
	tests/reference/native_reference.py=tests/reference/native.json \
	tests/reference/torch_api_reference.py=tests/reference/torch_api.json \
	tests/reference/checkpoint_reference.py=tests/reference/checkpoint.json \
	tests/reference/callbacks_reference.py=tests/reference/callbacks.json \
	tests/reference/training_options_reference.py=tests/reference/training_options.json \
	tests/reference/lightning_cli_reference.py=tests/reference/lightning_cli.json \
	tests/reference/resnet_reference.py=tests/reference/resnet.json \
	tests/reference/nanogpt_reference.py=tests/reference/nanogpt.json \
	tests/reference/digits_reference.py=tests/reference/digits.json \
	tests/reference/engine_reference.py=tests/reference/engine.json \
	tests/reference/scheduler_reference.py=tests/reference/schedulers.json \
	tests/reference/stream_reference.py=tests/reference/streams.json \
	tests/reference/transforms_reference.py=tests/reference/transforms.json \
	tests/reference/init_reference.py=tests/reference/init.json \
	tests/reference/data_reference.py=tests/reference/data.json \
	tests/reference/layers_reference.py=tests/reference/layers.json \
	tests/reference/ddp_reference.py=tests/reference/ddp.json
reference: setup
	$(PY) tools/run_references.py --alone ddp_reference --fresh opinfo_reference tools/reference_case_names.py $(REFERENCES)

# Performance side by side (see bench/bench.py); writes bench/results.md.
bench: host plugins
	$(CARGO) build --release -p lthost --example fetch_bench --example native_bench --example peak_rss
	$(PY) bench/bench.py

clean-logs:
	rm -rf lightning_logs
