GO ?= go
# Real kernel builds and boots under TCG take minutes: the full tier gets a long timeout.
TEST_TIMEOUT ?= 85m

.PHONY: all bespoke deps test test-short vet demo

all: bespoke

bespoke:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/bespoke ./cmd/bespoke
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/bespoke-init ./cmd/bespoke-init

deps:
	./scripts/deps.sh

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# The whole suite, real kernel builds and QEMU boots included.
test: deps vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

# Seconds; no root, QEMU or kernel build.
test-short:
	$(GO) test -short ./...

# Builds the redis example image, boots it and benchmarks it (see README).
demo: deps bespoke
	./scripts/demo.sh
