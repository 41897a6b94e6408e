# ICE build, test and development targets. `make help` lists them.
GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
TESTFLAGS ?=

.PHONY: help build test lint dev fuzz clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

PLUGINS   := ticker httpecho batch flaky

build: ## build bin/ice and the example plugins in bin/plugins/
	@mkdir -p $(BIN)/plugins
	$(GO) build -o $(BIN)/ice ./cmd/ice
	@for p in $(PLUGINS); do echo "$(GO) build -o $(BIN)/plugins/$$p ./plugins/examples/$$p"; $(GO) build -o $(BIN)/plugins/$$p ./plugins/examples/$$p || exit 1; done

test: ## run all tests with the race detector (unit, in-process cluster, end to end)
	$(GO) test -race -count=1 -timeout 12m $(TESTFLAGS) $(PKGS)

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@command -v staticcheck >/dev/null || { echo "staticcheck missing: run .ci/install-tools.sh"; exit 1; }
	staticcheck $(PKGS)

dev: build ## run a one-process development cluster (Ctrl-C stops it)
	$(BIN)/ice dev

fuzz: ## fuzz command decoding and apply for 60s each
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime 60s ./fsm/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 60s ./fsm/

clean: ## remove build output
	rm -rf $(BIN)
