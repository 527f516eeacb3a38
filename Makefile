# Stagegate. `make run` starts the gateway on the embedded store with
# configs/stagegate.yaml; `make test` runs every test with the race detector.

GO      ?= go
BIN     := bin/stagegate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Development secrets for `make run`; set your own in the environment.
export STAGEGATE_API_TOKEN      ?= dev-token-change-me
export STAGEGATE_TRACKING_KEY   ?= dev-tracking-key-change-me
export STAGEGATE_WEBHOOK_SECRET ?= whsec_ZGV2LXdlYmhvb2stc2VjcmV0LWNoYW5nZS1tZQ==

.PHONY: run test build bench lint fmt check clean

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

lint: ## golangci-lint when installed, else go vet + gofmt
	@if command -v golangci-lint >/dev/null 2>&1; then golangci-lint run ./...; \
	else echo "golangci-lint not installed: running go vet and gofmt"; \
	$(GO) vet ./... && test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }; fi

fmt: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
