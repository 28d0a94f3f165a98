# FlockMQ build, test and tooling. CI runs `make fmt-check vet lint test` (see .ci/run).

GO           ?= go
BIN          := bin
PKGS         := ./...
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.7.0
FUZZTIME     ?= 20s
BENCHTIME    ?= 1s
TEST_TIMEOUT ?= 9m

.PHONY: all build run test fmt fmt-check vet lint fuzz bench clean

all: build

## build: static flockmq binary in bin/ (CGO off).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/flockmq ./cmd/node

## run: a single-node broker with its embedded raft storage in ./data.
run: build
	./$(BIN)/flockmq

## test: every test with the race detector.
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

lint:
	$(GO) run $(STATICCHECK) $(PKGS)

## fuzz: every fuzz target for FUZZTIME each (default 20s).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## bench: every benchmark, with allocations.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

clean:
	rm -rf $(BIN)
