# Tachyon's front door. `make demo` runs the main job, `make test` every test.
# A fresh clone needs only Go, Python 3 and a C++ compiler: the Python venv
# (.venv, from requirements-dev.txt) is created on first use.

GO      ?= go
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
BIN     := bin/tachyon-gen
FUZZTIME ?= 5m

.PHONY: all demo test test-go test-python test-cpp lint fmt golden bench bench-quick \
        bench-python fuzz soak clean venv tachyon-gen

all: tachyon-gen

tachyon-gen:
	$(GO) build -o $(BIN) ./cmd/tachyon-gen

venv: $(VENV)/.ready
$(VENV)/.ready: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## demo: generate every example in every language and print their layouts
demo: tachyon-gen
	@rm -rf build/demo && mkdir -p build/demo
	$(BIN) generate --go-out build/demo/go --py-out build/demo/python --cpp-out build/demo/cpp examples/*.tsch
	@echo; echo "== generated files"; find build/demo -type f | sort
	@echo; echo "== layouts"; $(BIN) layout examples/*.tsch

## test: every test (Go with -race, Python, C++), plus lint
test: lint test-go test-python
	@echo "make test: all green"

test-go:
	$(GO) test -race -count=1 ./...

test-python: venv tachyon-gen
	$(PY) -m pytest -q tests/python

# The C++ checks (g++ and clang++, C++17 and C++20, the CMake consumer) run
# inside `go test ./gen/cpp`; this target runs them alone.
test-cpp:
	$(GO) test -count=1 ./gen/cpp

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')
	$(GO) run ./cmd/tachyon-gen fmt -w examples/*.tsch

## golden: rewrite every golden file from the current generators
golden:
	$(GO) test ./schema ./gen/... -run Golden -update

fuzz:
	$(GO) test ./schema -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

bench: bench-python
	$(GO) test -run '^$$' -bench . -benchmem ./schema ./gen/... ./examples/...

bench-python: venv
	$(PY) tests/python/bench_decode.py

bench-quick:
	$(GO) test -run '^$$' -bench . -benchtime 100x ./schema ./gen/...

soak:
	@echo "soak: not yet available (arrives with the ring hardening work)"; exit 1

clean:
	rm -rf bin build
