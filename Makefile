# Tachyon's front door. `make demo` runs the main job, `make test` every test.
# A fresh clone needs Go, Python 3, a C++ compiler and Rust (cargo, rustfmt,
# clippy): the Python venv (.venv, from requirements-dev.txt) is created on
# first use, and the crates of Cargo.lock are fetched once (the only step
# that needs crates.io); every cargo run after that is --offline.

GO      ?= go
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
# The optional PyTorch venv (requirements-torch.txt), made by `make test-torch`.
TORCH_VENV := .venv-torch
# The demo's and the benchmark's torch stages run in it when it exists, else
# in .venv, where they say torch is not installed and skip.
TORCH_PY = $(if $(wildcard $(TORCH_VENV)/bin/python),$(TORCH_VENV)/bin/python,$(PY))
BIN     := bin/tachyon-gen
FUZZTIME ?= 5m
CC      ?= cc
CXX     ?= g++
GEN     := build/gen
CARGO   ?= cargo
RUSTPEER := build/cargo/release/rustpeer

# tachyon-bridge and its demo (docs/BRIDGE.md)
BRIDGE  := bin/tachyon-bridge

.PHONY: all demo demo-bridge bin/tachyon-bridge test test-go test-arm64 test-python test-cpp test-rust rust-deps test-consumer miri tsan \
        test-torch torch-venv lint fmt golden bench bench-quick \
        bench-python bench-torch bench-go bench-geometry bench-deps bench-peers bench-peers-deps fuzz soak clean venv wheels \
        tachyon-gen peers generate bin/gopeer bin/bench $(RUSTPEER)

all: tachyon-gen

tachyon-gen:
	$(GO) build -o $(BIN) ./cmd/tachyon-gen

venv: $(VENV)/.ready
$(VENV)/.ready: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The wheels tests/consumer's fresh venv installs offline (pip --find-links).
WHEELS := build/wheels
wheels: $(WHEELS)/.ready
$(WHEELS)/.ready: tests/consumer/requirements.txt $(VENV)/.ready
	$(VENV)/bin/pip download --quiet --disable-pip-version-check -d $(WHEELS) -r tests/consumer/requirements.txt
	@touch $@

# rust-deps: the crates of Cargo.lock, into Cargo's cache (online, once).
rust-deps: build/.cargo-fetched
build/.cargo-fetched: Cargo.lock
	@mkdir -p build
	$(CARGO) fetch --locked --quiet
	@touch $@

## generate: every example in every language, into build/gen/{go,python,cpp,rust}
generate: $(GEN)/.stamp
$(GEN)/.stamp: examples/*.tsch $(shell find schema gen cmd -name '*.go' -not -name '*_test.go')
	$(GO) build -o $(BIN) ./cmd/tachyon-gen
	@rm -rf $(GEN) && mkdir -p $(GEN)
	$(BIN) generate --go-out $(GEN)/go --py-out $(GEN)/python --cpp-out $(GEN)/cpp --rust-out $(GEN)/rust examples/*.tsch
	@touch $@

## peers: the Go, C++, Python and Rust interop peers (examples/pipeline/PEERS.md)
peers: bin/gopeer build/cpppeer $(VENV)/.runtime $(RUSTPEER)

bin/gopeer:
	$(GO) build -o $@ ./examples/pipeline/gopeer

build/cpppeer: examples/pipeline/cpppeer.cpp runtime/cpp/include/tachyon/*.hpp $(GEN)/.stamp
	$(CXX) -std=c++20 -O2 -Wall -Wextra -Wpedantic -Iruntime/cpp/include -I$(GEN)/cpp $< -o $@

# The Rust peer; its build script generates the message module with the
# tachyon-gen built here. Cargo decides what is out of date.
$(RUSTPEER): build/.cargo-fetched tachyon-gen
	TACHYON_GEN=$(CURDIR)/$(BIN) $(CARGO) build --offline --locked --release -p rustpeer

# The Python ring client, installed editable into the venv.
$(VENV)/.runtime: $(VENV)/.ready runtime/python/pyproject.toml
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-build-isolation -e runtime/python
	@touch $@

## demo: the seed pipeline — C++ -> Python, Go -> Go + C++ + Python + Rust, Rust -> all four, then C++ -> torch
demo: peers
	@echo "== layout of the seed message"; $(BIN) layout examples/Message.tsch; echo
	$(GO) run ./examples/pipeline/demo --go bin/gopeer --cpp build/cpppeer --rust $(RUSTPEER) \
	  --python "$(PY) examples/pipeline/pypeer.py --gen-dir $(GEN)/python"
	@echo; echo "== ring batches -> PyTorch tensors through DLPack (skipped without torch)"
	@$(TORCH_PY) examples/pipeline/torch_example.py --count 200000 --gen-dir $(GEN)/python
	@echo; echo "== C++ -> Python -> torch.nn MLP on the 48 payload bytes, CUDA or CPU (skipped without torch)"
	@$(TORCH_PY) examples/pipeline/gpu_inference.py --cpp build/cpppeer --count 1000000 --gen-dir $(GEN)/python

## demo-bridge: Go -> ring "host A" -> tachyon-bridge out -> a three-node JetStream
## cluster (started and stopped by the demo) -> tachyon-bridge in -> ring "host B" -> Go, C++, Python
demo-bridge: peers $(BRIDGE) build/message.layout.json
	$(GO) run ./examples/bridge/demo --go bin/gopeer --cpp build/cpppeer \
	  --python "$(PY) examples/pipeline/pypeer.py --gen-dir $(GEN)/python" \
	  --bridge $(BRIDGE) --layout build/message.layout.json

bin/tachyon-bridge:
	$(GO) build -o $@ ./cmd/tachyon-bridge

build/message.layout.json: examples/Message.tsch $(GEN)/.stamp
	$(BIN) layout --json examples/Message.tsch > $@

## test: every test (Go with -race, Python, C++, Rust, the interop matrix), plus lint
test: lint test-go test-python test-rust
	@echo "make test: all green"

# The race detector allocates and slows the ring ~10x, so the
# zero-allocation proofs and the 10 M-message streams per policy run once
# more without it (under -race the streams are 200 k). The interop matrix
# (examples/pipeline/peers) needs the venv; the consumer projects
# (tests/consumer) build offline from the module cache and the wheels;
# gen/rust's tests build Rust crates with cargo --offline; its oracle, one
# crate of 200 generated schemas, takes minutes of rustc on two cores, hence
# the longer timeout.
test-go: venv wheels test-arm64 rust-deps
	$(GO) mod download
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run 'Alloc|Streams|TornRead' ./runtime/ring ./examples/market ./internal/bridge

# The Go ring's arm64 build (its store barrier is assembly) runs the
# protocol tests under qemu's user-mode emulation. qemu does not model
# arm64's weak ordering, so this proves the code runs, not the barrier: the
# argument for that is in runtime/ABI.md §8.1.
ARM64_TESTS := TestGoldenABI|TestRace|TestWakeAtTheBrink|TestTornReadDropOldest|TestParkedWakeups|TestHeapStreams|TestLossyMaxLag
test-arm64:
	@command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 not found: apt-get install qemu-user (.ci/run installs it)"; exit 1; }
	@mkdir -p build
	GOARCH=arm64 $(GO) test -c -o build/ring-arm64.test ./runtime/ring
	cd runtime/ring && qemu-aarch64 ../../build/ring-arm64.test -test.short -test.count=1 -test.run '$(ARM64_TESTS)'

test-python: venv tachyon-gen
	$(PY) -m pytest -q tests/python runtime/python/tests

# The Rust crates of the workspace (runtime/rust: the ring client's unit,
# golden, race, hostile, sealed and property tests; the Rust peer):
# formatted, clippy-clean, tested. The generated Rust is tested by `go test
# ./gen/rust` (test-go).
test-rust: rust-deps tachyon-gen
	$(CARGO) fmt --all --check
	TACHYON_GEN=$(CURDIR)/$(BIN) nice $(CARGO) clippy --offline --locked --workspace --all-targets -- -D warnings
	TACHYON_GEN=$(CURDIR)/$(BIN) nice $(CARGO) test --offline --locked --workspace

## test-torch: tachyon.torch with real PyTorch, in its own venv (optional: torch
## is ~2.8 GB of wheels; never part of `make test`). CUDA tests run where
## torch.cuda.is_available(); on a machine without a GPU they are skipped.
test-torch: torch-venv build/cpppeer
	$(TORCH_VENV)/bin/python -m pytest -q runtime/python/tests_torch
	$(TORCH_VENV)/bin/python -m mypy --strict --cache-dir build/mypy-torch runtime/python/tachyon  # its own cache: torch is found here

torch-venv: $(TORCH_VENV)/.ready
$(TORCH_VENV)/.ready: requirements-torch.txt requirements-dev.txt runtime/python/pyproject.toml
	$(PYTHON) -m venv $(TORCH_VENV)
	nice $(TORCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-torch.txt
	$(TORCH_VENV)/bin/pip install --quiet --disable-pip-version-check --no-build-isolation -e runtime/python
	touch $@

# The C++ checks (g++ and clang++, C++17 and C++20, the CMake consumer) run
# inside `go test ./gen/cpp`; this target runs them alone.
test-cpp:
	$(GO) test -count=1 ./gen/cpp

# The Rust client's pure logic (ABI geometry, header validation and its
# property tests, errors, generated-message helpers) under Miri, and its
# threaded protocol tests under ThreadSanitizer. They need a nightly
# toolchain with the miri and rust-src components; not part of make test.
MIRI_TESTS := ring::abi:: ring::error:: ring::wait:: message::tests ring::tests::property::decode
miri: rust-deps
	$(CARGO) +nightly miri test --offline -p tachyon-ring --lib -- $(MIRI_TESTS)

tsan: rust-deps
	RUSTFLAGS=-Zsanitizer=thread $(CARGO) +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu \
	  --target-dir build/cargo-tsan -p tachyon-ring --lib -- ring::tests::basic ring::tests::races \
	  ring::tests::sealed ring::tests::hostile

# The projects of users (Go module, fresh venv, CMake find_package and
# FetchContent, the CI layout check), built outside the checkout; in
# `make test` too.
test-consumer: venv wheels
	$(GO) mod download
	$(GO) test -count=1 -v ./tests/consumer

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./runtime/ring

fmt:
	gofmt -w $$(git ls-files '*.go')
	$(CARGO) fmt --all
	$(GO) run ./cmd/tachyon-gen fmt -w examples/*.tsch

## golden: rewrite every golden file from the current generators
golden:
	$(GO) test ./schema ./gen/... -run Golden -update

fuzz:
	$(GO) test ./schema -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

## bench: every figure beside its floor and its peers (writes bench-results.json)
bench: bench-deps
	bin/bench

bench-quick: bench-deps
	bin/bench --quick --out build/bench-quick.json --svg build/bench-quick.svg

bench-deps: peers build/bench/floor_pingpong build/bench/floor_spsc bin/bench $(BRIDGE) build/message.layout.json

## bench-peers: Tachyon beside Aeron, iceoryx2 and riyaneel's Tachyon, interleaved
## rounds (minutes; builds the peers from crates.io and Maven Central, so it
## needs the registries; writes bench-peers.json and bench-peers-*.svg/png;
## PEERS_FLAGS="--rounds 7 --quiet-wait 3m", see bin/bench peers -h)
PEERS_FLAGS ?=
bench-peers: bench-deps bench-peers-deps
	bin/bench peers $(PEERS_FLAGS)

bench-peers-deps:
	@bench/peers/build.sh

bin/bench:
	$(GO) build -o $@ ./bench

build/bench/%: runtime/cpp/bench/%.c runtime/cpp/bench/floor.h
	@mkdir -p build/bench
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror $< -o $@

# Go micro-benchmarks (codec, compiler, ring) with the testing package.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./schema ./gen/... ./examples/... ./runtime/ring

# ABI v2's slot layouts and fences, message size by message size
# (docs/DECISIONS.md, "Benchmarks"): round trips and streams, Go <-> Go.
bench-geometry:
	$(GO) test -run '^$$' -bench Geometry -benchtime 200000x -count 3 ./runtime/ring

# Ring -> torch throughput by batch size with its baselines, alone (make bench runs it too).
bench-torch: torch-venv generate
	$(TORCH_VENV)/bin/python runtime/python/bench_torch.py --full

bench-python: venv
	$(PY) tests/python/bench_decode.py

## soak: 10^8 messages Go -> Go + C++ + Python + lossy readers (minutes; not CI)
SOAK_COUNT ?= 100000000
soak: peers
	$(GO) run ./examples/pipeline/soak --count $(SOAK_COUNT) --go bin/gopeer --cpp build/cpppeer \
	  --python "$(PY) examples/pipeline/pypeer.py --gen-dir $(GEN)/python"

clean:
	rm -rf bin build
