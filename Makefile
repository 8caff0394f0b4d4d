GO ?= go
# Real kernel builds and boots under TCG take minutes: the full tier gets a long timeout.
TEST_TIMEOUT ?= 85m
# staticcheck, pinned; make deps installs it under .tools/ (one dir per version).
STATICCHECK_VERSION := v0.8.2
STATICCHECK := .tools/$(STATICCHECK_VERSION)/staticcheck

.PHONY: all bespoke plugin erofs-utils deps test test-short vet fuzz demo e2e-all apps-table

all: bespoke plugin

bespoke:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/bespoke ./cmd/bespoke
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/bespoke-init ./cmd/bespoke-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/bespoke-guest-trace ./cmd/bespoke-guest-trace
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/bespoke-cc ./cmd/bespoke-cc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o bin/bespoke-ld ./cmd/bespoke-ld

deps: $(STATICCHECK)
	./scripts/deps.sh
	./scripts/qemu-plugin.sh bin/bespoke-cost.so
	./scripts/erofs-utils.sh bin/erofs-utils

# mkfs.erofs and fsck.erofs with lzma (bespoke build --compression lzma).
erofs-utils:
	./scripts/erofs-utils.sh bin/erofs-utils

# The cost model's QEMU plugin (bespoke bench --model; docs/perf.md).
plugin:
	./scripts/qemu-plugin.sh bin/bespoke-cost.so

$(STATICCHECK):
	GOBIN=$(CURDIR)/$(dir $(STATICCHECK)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

vet: $(STATICCHECK)
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet -printf.funcs=github.com/bespoke-os/bespoke/internal/guestinit/lite.Sprintf ./...
	$(STATICCHECK) ./...

# The whole suite, real kernel builds and QEMU boots included. -p 1: one
# package at a time, so that kernel builds do not share the 2 cores and each
# can continue the nearest earlier build dir (Kbuild recompiles only what a
# config change touches) instead of starting a fresh one. Then the kernels
# the run built, checked against the budget of kernel objects
# (testkernel.Budget; README, Testing).
test: deps vet
	@start=$$(date +%s); \
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) ./... && \
	$(GO) run ./internal/testkernel/budget -since $$start
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# Every fuzz target for FUZZTIME (make test runs each for 5 s; longer:
# make fuzz FUZZTIME=5m).
FUZZTIME ?= 5s
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

# All six example applications built, booted, benchmarked and verified,
# and the redis example with a profile-guided kernel.
e2e-all: deps vet
	BESPOKE_E2E_ALL=1 $(GO) test -count=1 -timeout 150m -run 'TestAppImages|TestRedisImage|TestRedisPGO|TestGoHTTPImage' -v ./internal/image/

# The table of docs/apps.md: builds and verifies the six examples with bin/bespoke.
apps-table: deps bespoke
	./scripts/apps.sh out/apps

# Seconds; no root, QEMU or kernel build.
test-short:
	$(GO) test -short ./...

# Builds the redis example image, boots it and benchmarks it (see README).
demo: deps bespoke
	./scripts/demo.sh
