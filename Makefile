# Switchboard — `make run` for a first look, `make test` for everything the tests need and all the tests.
GO          ?= go
BIN         := bin/switchboard
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/switchboard-gw/switchboard/cmd/switchboard/app.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Tests use a real ClickHouse and a real Redis started by our own scripts on these ports.
CLICKHOUSE_PORT ?= 9000
REDIS_PORT      ?= 6379
export CLICKHOUSE_PORT REDIS_PORT
# How long make test fuzzes each target (make fuzz: FUZZTIME, default 30s).
TEST_FUZZTIME   ?= 3s

.PHONY: build run test test-ui lint bench clickhouse redis loadtest fuzz soak kubeconform

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/switchboard

## run: the gateway on the embedded demo config, with the demo upstreams in the same process; LISTEN=host:port serves
## the gateway elsewhere (default 127.0.0.1:8080, from the demo config)
run: build
	./$(BIN) demo $(if $(LISTEN),--listen $(LISTEN))

## clickhouse: install (Debian's clickhouse-server) and start a local ClickHouse for the tests
clickhouse:
	bash deploy/clickhouse.sh start

## redis: install (Debian's redis-server) and start a local Redis for the multi-replica tests
redis:
	bash deploy/redis.sh start

# The dashboard's browser test drives Debian's chromium with npm's playwright-core, kept out of the tree.
UI_TEST_MODULES := $(CURDIR)/.cache/ui-test/node_modules

## test: lint, install and start what the tests need, run every test with the race detector, then a short fuzz run
test: lint kubeconform clickhouse redis ui-test-deps
	SWITCHBOARD_TEST_CLICKHOUSE=127.0.0.1:$(CLICKHOUSE_PORT) SWITCHBOARD_TEST_REDIS=127.0.0.1:$(REDIS_PORT) \
		PLAYWRIGHT_NODE_MODULES=$(UI_TEST_MODULES) $(GO) test -race -count=1 -timeout 15m ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

## test-ui: only the dashboard's browser test (screenshots in dashboard/screenshots/)
test-ui: ui-test-deps
	PLAYWRIGHT_NODE_MODULES=$(UI_TEST_MODULES) $(GO) test -race -count=1 -run TestBrowserDashboard -v ./dashboard/

ui-test-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@test -d $(UI_TEST_MODULES)/playwright-core || npm install --silent --prefix .cache/ui-test --no-save --no-audit --no-fund playwright-core

## kubeconform: validate deploy/kubernetes against the Kubernetes schemas, offline (built from the k8s module)
kubeconform:
	bash deploy/kubeconform.sh

## bench: the Go benchmarks (decision path in memory and on Redis, span end, ClickHouse writes, dashboard queries at 1M
## spans, gateway overhead per protocol vs direct, chat with in-memory vs Redis governance)
bench: clickhouse redis
	SWITCHBOARD_TEST_CLICKHOUSE=127.0.0.1:$(CLICKHOUSE_PORT) SWITCHBOARD_TEST_REDIS=127.0.0.1:$(REDIS_PORT) \
		$(GO) test -run '^$$' -bench . -benchmem -timeout 20m \
		./governance/... ./trace/ ./storage/ ./llm/ ./mcp/ ./a2a/ ./dashboard/ ./cmd/switchboard/app/

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## loadtest: k6 against the mocks directly, two bare proxy floors and the gateway; writes loadtest/results/summary.md
loadtest:
	bash loadtest/bench/run.sh

## soak: mixed k6 load on the gateway for SOAK_DURATION (default 10m), sampling RSS and goroutines every 10 s;
## writes loadtest/results/soak.csv and soak.md and fails on growth after warm-up beyond the bound in run.sh
soak:
	bash loadtest/soak/run.sh

# One target per run: go test -fuzz takes a single target. Crashers land in <pkg>/testdata/fuzz/<Target>/ and run
# as regression tests with every go test after that.
FUZZTIME    ?= 30s
FUZZ_TARGETS := \
	./llm/:FuzzParseRequest ./llm/:FuzzTranslateRequest ./llm/:FuzzSSE ./llm/:FuzzUsageOf \
	./mcp/:FuzzEdge ./a2a/:FuzzReadEnvelope \
	./trace/:FuzzParseTraceparent ./trace/:FuzzFromHeaders \
	./governance/:FuzzKeyFromHeaders ./governance/:FuzzNanoUSD ./governance/:FuzzPeriod ./governance/:FuzzGlob \
	./cmd/switchboard/config/:FuzzParse

# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" as a failure when -fuzztime ends while
# a worker is mid-call (go.dev/issue/75804, fixed in Go 1.27). Such a run wrote no failing input; it is run once more,
# and fails the target only if that happens again. Any other failure fails at once.
fuzz_flake = echo "$$1" | grep -q 'context deadline exceeded' && ! echo "$$1" | grep -q -e 'Failing input written' -e 'panic:'

## fuzz: every request-path parser for FUZZTIME each (default 30s), one after another; prints executions per target
fuzz:
	@flake() { $(fuzz_flake); }; failed=; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || \
		{ flake "$$out" && echo "$$name: the fuzz coordinator's deadline race (go.dev/issue/75804), running it again" && \
		  out=$$($(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1); } || \
		{ echo "$$out"; failed="$$failed $$name"; }; \
		echo "$$name ($$pkg): $$(echo "$$out" | grep -o 'execs: [0-9]*' | tail -1)"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz failed (crasher or build error, see above):$$failed"; exit 1; fi
