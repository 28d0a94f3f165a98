# FlockMQ build, test and tooling. CI runs `make fmt-check vet lint test` (see .ci/run).

GO           ?= go
BIN          := bin
PKGS         := ./...
STATICCHECK  := honnef.co/go/tools/cmd/staticcheck@v0.7.0
FUZZTIME     ?= 20s
BENCHTIME    ?= 1s
TEST_TIMEOUT ?= 9m

.PHONY: all build bench-tool docker run test fmt fmt-check vet lint fuzz bench clean

all: build

## build: static flockmq and flockmq-bench binaries in bin/ (CGO off).
build: bench-tool
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/flockmq ./cmd/node

## bench-tool: the load tool, bin/flockmq-bench (see bench/README.md).
bench-tool:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/flockmq-bench ./bench/cmd/flockmq-bench

## docker: the flockmq:dev image, FROM scratch with the static binary, run as
## 65532:65532. Its context, $(BIN)/image, holds the binary and the empty data/
## that becomes /data, owned by that user.
docker: build
	rm -rf $(BIN)/image && mkdir -p $(BIN)/image/data
	cp $(BIN)/flockmq $(BIN)/image/flockmq
	docker build -q -f deploy/Dockerfile -t flockmq:dev $(BIN)/image

## compose-up: a three-node cluster in Docker (deploy/compose): MQTT on host
## ports 1883-1885, admin on 127.0.0.1:8080-8082. Change the placeholders in
## deploy/compose/flockmq.env first. compose-down stops it, keeping its volumes.
COMPOSE ?= docker-compose
FLOCKMQ_COMPOSE := $(COMPOSE) -p flockmq -f deploy/compose/docker-compose.yml
.PHONY: compose-up compose-down deploy-test
compose-up: docker
	$(FLOCKMQ_COMPOSE) up -d

compose-down:
	$(FLOCKMQ_COMPOSE) down

## deploy-test: the deploy tests, with the one `make test` skips: it runs `make
## docker` and a three-node cluster from deploy/compose under a project name of
## its own, checks it and removes it (about a minute; needs Docker and
## docker-compose).
deploy-test:
	FLOCKMQ_DEPLOY_TEST=1 $(GO) test -count=1 -timeout 10m -run '^TestDeploy' -v ./cmd/node

## chaos: bench/cmd/flockmq-chaos against the compose cluster of `make docker`'s
## image, under a project and network of its own, removed at the end: QoS 1
## publishers, persistent subscribers and retained writes on all three nodes
## while the leader and a follower are killed, one node is partitioned, one
## paused, and all three restarted in turn; then the history is checked
## (docs/reliability.md). About 5 minutes, under 15; CHAOS_FLAGS=-short (one
## leader kill, one partition) about 3.
CHAOS_FLAGS ?=
.PHONY: chaos
chaos: docker
	$(GO) run ./bench/cmd/flockmq-chaos -root . $(CHAOS_FLAGS)

## run: a single-node broker with its embedded raft storage in ./data.
run: build
	./$(BIN)/flockmq

## test: every test with the race detector; then the Kubernetes manifests'
## check, a module of its own that ./... does not enter (deploy/k8s/README.md).
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)
	cd deploy/k8s && $(GO) test -count=1 ./...

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

## peers: the comparison brokers of bench-compare, bin/mochi (own go.mod in bench/peers/mochi).
.PHONY: peers bench-compare
peers:
	cd bench/peers/mochi && $(GO) build -o ../../../$(BIN)/mochi .

## bench-compare: FlockMQ (as `make run` starts it) vs Mosquitto vs mochi, each in its
## default configuration and none pinned to CPUs (bench/README.md), written to
## docs/benchmarks.md ("Broker comparison"); QUICK=1 is a short smoke run that
## leaves the docs alone.
bench-compare: build peers
	$(GO) build -o $(BIN)/bench-compare ./bench/cmd/bench-compare
	./$(BIN)/bench-compare -bin $(BIN) $(if $(QUICK),-quick,-doc docs/benchmarks.md) \
	  -make-command 'make bench-compare$(if $(QUICK), QUICK=1)'

## bench-cluster: issue 11's cluster rows (cross-node fan-in, fan-out over three
## nodes, route convergence of 100,000 subscriptions, takeover of 10,000
## sessions): three FlockMQ nodes on loopback, each as `make run` starts it plus
## the cluster flags, beside a single node as `make run` starts it, never at the
## same time (bench/README.md), written to docs/benchmarks.md ("Cluster (three
## nodes on loopback)"); QUICK=1 is a short smoke run that leaves the docs alone.
.PHONY: bench-cluster
bench-cluster: build
	$(GO) build -o $(BIN)/bench-compare ./bench/cmd/bench-compare
	./$(BIN)/bench-compare -cluster -bin $(BIN) $(if $(QUICK),-quick,-doc docs/benchmarks.md) \
	  -make-command 'make bench-cluster$(if $(QUICK), QUICK=1)'

## bench-tls: fan-in QoS 1 and the connect rate over TLS next to the same rows
## over TCP, in one run: FlockMQ and Mosquitto each serving both (a throwaway
## ECDSA P-256 CA and server certificate), mochi on TCP only (bench/README.md),
## written to docs/benchmarks.md ("TLS next to TCP"); QUICK=1 is a short smoke
## run that leaves the docs alone.
.PHONY: bench-tls
bench-tls: build peers
	$(GO) build -o $(BIN)/bench-compare ./bench/cmd/bench-compare
	./$(BIN)/bench-compare -tls -bin $(BIN) $(if $(QUICK),-quick,-doc docs/benchmarks.md) \
	  -make-command 'make bench-tls$(if $(QUICK), QUICK=1)'

## bench-maxconn: issue 5's row "as many idle connections as one process may open":
## one broker on CPU 1 (GOMAXPROCS=1, -loops 1) holds MAXCONN connections, each
## subscribed, from one flockmq-bench on CPU 0, which then publishes to 1,000 of
## them at random; broker RSS per connection, extrapolated to 1,000,000.
## MAXCONN=max is the most the broker's open-file limit allows (19,984 with the
## 20,000 here); MAXCONN_BROKER=mosquitto runs it against /usr/sbin/mosquitto.
MAXCONN        ?= max
MAXCONN_BROKER ?= flockmq
MAXCONN_PORT   ?= 18883
.PHONY: bench-maxconn
bench-maxconn: build
	BIN=$(BIN) CONNS=$(MAXCONN) PROBE=1000 HOLD=10s PORT=$(MAXCONN_PORT) \
	  bash bench/scripts/maxconn.sh $(MAXCONN_BROKER)

clean:
	rm -rf $(BIN)
