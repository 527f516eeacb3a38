# Stagegate. `make run` starts the gateway on the embedded store with
# configs/stagegate.yaml; `make test` runs every test with the race detector.

GO      ?= go
BIN     := bin/stagegate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Development secrets for `make run`; set your own in the environment.
export STAGEGATE_API_TOKEN      ?= dev-token-change-me
export STAGEGATE_TRACKING_KEY   ?= dev-tracking-key-change-me
export STAGEGATE_WEBHOOK_SECRET ?= whsec_ZGV2LXdlYmhvb2stc2VjcmV0LWNoYW5nZS1tZQ==

.PHONY: run test build bench lint lint-install fmt check clean

# `make run` builds, then execs the binary in place of the recipe's shell:
# Ctrl-C reaches the gateway itself, which stops gracefully and exits 0
# (`go run` exits 1 on a signal). ARGS adds serve flags: ARGS='-listen 127.0.0.1:9090'.
run: build ## start the gateway with configs/stagegate.yaml on the embedded store
	exec $(BIN) serve -config configs/stagegate.yaml $(ARGS)

test: ## every test, race detector on
	$(GO) test -race -count=1 -timeout 20m ./...

build: ## build bin/stagegate
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/stagegate

check: build ## validate configs/stagegate.yaml
	$(BIN) check -config configs/stagegate.yaml

bench: build ## throughput and latency benchmarks; writes bench/RESULTS.md (not part of CI)
	./scripts/bench.sh

GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)/golangci-lint

lint-install: ## install the pinned golangci-lint into $(go env GOPATH)/bin
	$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

lint: ## golangci-lint (the pinned version, .golangci.yml); make lint-install first
	@test -x $(GOLANGCI_LINT) || { echo "golangci-lint not installed: run make lint-install"; exit 1; }
	$(GOLANGCI_LINT) run ./...

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
