# Switchboard — `make run` for a first look, `make test` for everything the tests need and all the tests.
GO          ?= go
BIN         := bin/switchboard
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X github.com/switchboard-gw/switchboard/cmd/switchboard/app.Version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Tests use a real ClickHouse started by our own script on this port.
CLICKHOUSE_PORT ?= 9000
export CLICKHOUSE_PORT

.PHONY: build run test lint bench clickhouse

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/switchboard

## run: the gateway on the embedded demo config, with the demo upstreams in the same process
run: build
	./$(BIN) demo

## clickhouse: install (Debian's clickhouse-server) and start a local ClickHouse for the tests
clickhouse:
	bash deploy/clickhouse.sh start

## test: lint, install and start what the tests need, then run every test with the race detector
test: lint clickhouse
	SWITCHBOARD_TEST_CLICKHOUSE=127.0.0.1:$(CLICKHOUSE_PORT) $(GO) test -race -count=1 -timeout 15m ./...

## bench: the Go benchmarks (decision path, span end, ClickHouse writes, gateway overhead per protocol vs direct)
bench: clickhouse
	SWITCHBOARD_TEST_CLICKHOUSE=127.0.0.1:$(CLICKHOUSE_PORT) $(GO) test -run '^$$' -bench . -benchmem -timeout 20m \
		./governance/ ./trace/ ./storage/ ./llm/ ./mcp/ ./a2a/

## lint: gofmt, go vet, staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
