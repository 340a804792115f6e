# Reword — build, run and test. `make run` and `make test` work on a fresh
# Debian machine: they install what they need (ONNX Runtime via npm pack,
# chromium, brotli and the training code's torch via apt-get, Go modules via
# the module proxy).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)-$(shell date -u +%Y%m%d%H%M%S)
LDFLAGS   := -s -w -X reword/backend/buildinfo.Version=$(VERSION)
ORT_DIR   := .cache/ort/1.24.1
ORT_LIB   := $(ORT_DIR)/libonnxruntime.so.1
WEB_OUT   := bin/web
ADDR      ?= 127.0.0.1:8080
PYTHON    ?= /usr/bin/python3

# Server packages (everything with goroutines serving clients) and backend/ort
# (a run is cancelled from the context's goroutine) run under the race
# detector; the rest without it, since the race runtime slows the numeric
# tests several-fold on 2 cores. Each package runs once.
RACE_PKGS   := ./backend/server/... ./backend/queue/... ./backend/store/... ./backend/cluster/... ./backend/editjob/... \
               ./backend/clientaddr/... ./backend/keyrate/... ./backend/ort/... ./shared/protocol/...
RACE_FILTER := /backend/(server|queue|store|cluster|editjob|clientaddr|keyrate|ort)(/|$$)|/shared/protocol(/|$$)

.PHONY: build run test ort deps-browser deps-train fmt-check vet unit fuzz e2e train-test bench tiny-model clean

build: bin/reword wasm

bin/reword: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/reword ./backend/cmd/reword

wasm: FORCE
	@mkdir -p $(WEB_OUT)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags '-s -w' -o $(WEB_OUT)/app.wasm ./web/wasm
	gzip -9 -n -k -f $(WEB_OUT)/app.wasm
	@if command -v brotli >/dev/null; then brotli -q 11 -f -o $(WEB_OUT)/app.wasm.br $(WEB_OUT)/app.wasm; \
	  else rm -f $(WEB_OUT)/app.wasm.br; echo "brotli not installed: serving gzip only (apt-get install brotli)"; fi
	@raw=$$(stat -c %s $(WEB_OUT)/app.wasm); gz=$$(stat -c %s $(WEB_OUT)/app.wasm.gz); \
	  br=$$( [ -f $(WEB_OUT)/app.wasm.br ] && stat -c %s $(WEB_OUT)/app.wasm.br || echo 0); \
	  awk -v r=$$raw -v g=$$gz -v b=$$br 'BEGIN { printf "app.wasm: %.1f MB raw, transferred %.1f MB with gzip", r/1e6, g/1e6; \
	    if (b > 0) printf ", %.1f MB with brotli", b/1e6; printf "\n" }'

FORCE:

# The front end as a static website for a file host (Vercel runs this, see
# vercel.json): pages, go-app's scripts, static/ and the compressed WASM in
# build/static. REWORD_WS_URL is the backend's WebSocket, fixed at build time
# (on Vercel: a project environment variable), e.g.
# `make static REWORD_WS_URL=wss://api.example/ws`; it also goes into the
# pages' CSP connect-src. Start that backend with --allow-origins set to the
# site's origin.
STATIC_OUT    := build/static
REWORD_WS_URL ?=

# Phony on its own line: the static/ folder would otherwise make it "up to date".
.PHONY: static
static: wasm
	rm -rf $(STATIC_OUT)
	$(GO) run ./web/cmd/staticsite -out $(STATIC_OUT) -wasm $(WEB_OUT) -ws-url '$(REWORD_WS_URL)' -version '$(VERSION)'

ort: $(ORT_LIB)

$(ORT_LIB):
	bash backend/ort/provision.sh $(ORT_DIR)

run: build ort
	bin/reword serve --addr $(ADDR)

# Chromium for the browser tests, and brotli for the WASM, from Debian.
deps-browser:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v brotli >/dev/null || missing="$$missing brotli"; \
	  if [ -n "$$missing" ]; then echo "installing$$missing with apt-get"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./web/... ./shared/...

unit: ort
	$(GO) test -count=1 $$($(GO) list ./... | grep -Ev '$(RACE_FILTER)')
	$(GO) test -count=1 -race $(RACE_PKGS)

# Every fuzz target runs for FUZZ_TIME beyond its seed corpus (testdata,
# which unit runs anyway): a few seconds each keeps make test short while
# new code meets inputs nobody wrote down. A failing input is written to
# the package's testdata/fuzz, where it stays as a seed. Go 1.26's fuzz
# coordinator sometimes fails a run at the -fuzztime deadline with a bare
# "context deadline exceeded" under CPU load (golang/go#75804): that
# signature with no new input in testdata/fuzz is reported, not failed.
FUZZ_TIME    ?= 4s
FUZZ_TARGETS := ./shared/edit:FuzzDecodeLink ./shared/edit:FuzzParseValidate \
                ./shared/protocol:FuzzDecode ./shared/protocol:FuzzDecodePreview ./shared/protocol:FuzzResolveBothWays \
                ./shared/clip:FuzzEncode ./backend/photo:FuzzPrepare ./backend/photo:FuzzEXIF \
                ./backend/clientaddr:FuzzAddr

fuzz:
	@missing=$$(git grep -h -o '^func Fuzz[A-Za-z0-9_]*' -- '*.go' | sed 's/^func //' | sort -u | \
	  while read -r f; do case " $(FUZZ_TARGETS) " in *:$$f\ *) ;; *) echo "$$f";; esac; done); \
	  if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS in the Makefile:" $$missing; exit 1; fi
	@log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for target in $(FUZZ_TARGETS); do \
	  pkg=$${target%%:*}; name=$${target##*:}; corpus=$$pkg/testdata/fuzz/$$name; \
	  echo "fuzz $$pkg $$name for $(FUZZ_TIME)"; \
	  before=$$( (ls "$$corpus" 2>/dev/null || true) | wc -l); \
	  if $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME) $$pkg >"$$log" 2>&1; then cat "$$log"; continue; fi; \
	  cat "$$log"; after=$$( (ls "$$corpus" 2>/dev/null || true) | wc -l); \
	  if [ "$$before" = "$$after" ] && grep -q '^    context deadline exceeded$$' "$$log"; then \
	    echo "fuzz $$name: Go's fuzz coordinator raced its own -fuzztime deadline (golang/go#75804, fixed in Go 1.27); no failing input was found or written, so this is not a failure"; \
	  else exit 1; fi; \
	done

e2e: deps-browser build ort
	REWORD_BIN=$(CURDIR)/bin/reword $(GO) test -count=1 -tags e2e -v ./web/e2e/ 2>&1 | grep -Ev '^=== (RUN|PAUSE|CONT)'

# torch and NumPy for the training code's tests, from Debian (Debian 12's
# torch is 1.13, the version the tiny model is trained with). PYTHON must be
# the system's Python for apt-get's packages to reach it.
deps-train:
	@if ! $(PYTHON) -c 'import torch, numpy' 2>/dev/null; then echo "installing python3-torch with apt-get"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch python3-numpy libopenblas0-pthread; \
	  $(PYTHON) -c 'import torch, numpy' || { echo "$(PYTHON) still cannot import torch and numpy: point PYTHON at the system's Python (/usr/bin/python3)"; exit 1; }; fi

# The training code's tests: what a training step computes, the flags it
# refuses and two-step runs on a small drawn data set (no model is trained).
train-test: deps-train
	GO=$(GO) $(PYTHON) -m unittest discover -v -s models/tiny/train -p 'test_*.py'

test: fmt-check vet unit fuzz e2e train-test

# The quick benchmarks: Go micro-benchmarks (tokenizer, schedulers, …) and
# the engine and instrumentation ratios on the tiny model. The long ones run
# on their own: bin/reword bench edit | invert | model (see the README).
bench: build ort
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
	bin/reword bench instrument
	bin/reword bench engine

tiny-model:
	bash models/tiny/train/make_tiny_model.sh

clean:
	rm -rf bin
