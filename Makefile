# ICE build, test and development targets. `make help` lists them.
GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
TESTFLAGS ?=

.PHONY: help build test lint dev fuzz clean jepsen jepsen-long

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

PLUGINS   := ticker httpecho batch flaky fetch payout extract summarize

build: ## build bin/ice and the example plugins in bin/plugins/
	@mkdir -p $(BIN)/plugins
	$(GO) build -o $(BIN)/ice ./cmd/ice
	@for p in $(PLUGINS); do echo "CGO_ENABLED=0 $(GO) build -ldflags '-s -w' -o $(BIN)/plugins/$$p ./plugins/examples/$$p"; CGO_ENABLED=0 $(GO) build -ldflags '-s -w' -o $(BIN)/plugins/$$p ./plugins/examples/$$p || exit 1; done

test: ## run all tests with the race detector (unit, in-process cluster, end to end)
	$(GO) test -race -count=1 -timeout 12m $(TESTFLAGS) $(PKGS)

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null || { echo "staticcheck missing: run .ci/install-tools.sh"; exit 1; }
	staticcheck $(PKGS)

# Flags of `ice dev` for make dev, e.g. DEV_FLAGS="--data-dir /tmp/ice-dev" to keep the state
# across restarts (without it each start is a new, empty cluster).
DEV_FLAGS ?=

dev: build ## run a one-process development cluster (Ctrl-C stops it; DEV_FLAGS="--data-dir DIR ...")
	$(BIN)/ice dev $(DEV_FLAGS)

fuzz: ## fuzz command decoding, apply, snapshot reading and the policy parser for 60s each
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime 60s ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 60s ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzReadSnapshot$$' -fuzztime 60s ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s ./acl/

clean: ## remove build output
	rm -rf $(BIN)

.PHONY: image test-docker

image: ## build the container image ice:dev, FROM scratch (needs a Docker engine)
	GO=$(GO) deploy/docker/build.sh

test-docker: ## build the image, run the compose cluster on Docker, kill a leader, cut an agent off
	ICE_TEST_DOCKER=1 $(GO) test -v -count=1 -timeout 10m -run '^TestComposeCluster$$' ./deploy/docker/

SEED      ?= 1
# The faults of make jepsen and jepsen-long (--faults of jepsen/cmd/jepsen): all of them,
# corrupt, disk-full, clock-skew and membership included (disk-full needs root for its tmpfs).
JEPSEN_FAULTS ?= all

jepsen: ## fault test against real processes, about 3 minutes (root; SEED=1; JEPSEN_FAULTS=all for every fault; results in jepsen/results/)
	$(GO) run ./jepsen/cmd/jepsen --seed $(SEED) --duration 150s --faults $(JEPSEN_FAULTS)

jepsen-long: ## fault test for 10 minutes: 5 servers, 3 agents, more and overlapping faults (SEED=N, JEPSEN_FAULTS=...)
	$(GO) run ./jepsen/cmd/jepsen --seed $(SEED) --duration 10m --servers 5 --agents 3 --tickers 3 --faults $(JEPSEN_FAULTS) \
		--overlap --gap-min 2s --gap-max 5s --hold-min 3s --hold-max 8s --update-every 8s

.PHONY: bench

BENCHFLAGS ?=

bench: build ## side-by-side benchmark: ICE vs etcd 3.4 vs raw raft, and the targets of docs/performance.md (< 10 min; BENCHFLAGS=...)
	$(GO) build -o $(BIN)/icebench ./bench/cmd/icebench
	$(BIN)/icebench --ice-bin $(BIN)/ice --plugin-dir $(BIN)/plugins $(BENCHFLAGS)

.PHONY: bench-scale

bench-scale: build ## million-run rollout: 1,000,000 runs onto 10,000 simulated nodes through 3 secure servers (< 15 min; BENCHFLAGS=...)
	$(GO) build -o $(BIN)/icebench ./bench/cmd/icebench
	$(BIN)/icebench --ice-bin $(BIN)/ice --plugin-dir $(BIN)/plugins --systems '' --figures million $(BENCHFLAGS)

.PHONY: soak

SOAKFLAGS ?=

# The soak run drives a secure 3-server cluster, `ice agent --simulate` nodes and a churning
# workload through 2,000,000 committed transitions (at most 15 minutes) and writes
# soak/results/<UTC time>/: soak.json (ratios, targets, checks), samples.json, soak.png, soak.html.
# Its last line is soak.json's path; it exits non-zero only when a correctness check fails.
soak: build ## soak: bounded memory over 2,000,000 transitions (<= 15 min; SOAKFLAGS="--transitions N --max-duration D")
	$(GO) run ./soak/cmd/icesoak --ice-bin $(BIN)/ice --plugin-dir $(BIN)/plugins $(SOAKFLAGS)
