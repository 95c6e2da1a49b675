# natter: `make test` is the one command that checks everything.

GINKGO      := go tool ginkgo
STATICCHECK := go tool staticcheck
REPORT      := report.json
SPECS_DOC   := specs/SPECS.md
GINKGO_FLAGS := -r --race --randomize-all --timeout=15m --poll-progress-after=60s

.PHONY: test test-netfake test-loopback vet lint fuzz bench bench-readme cover run cert specs-doc check-specs-doc clean

## test: vet, run every spec and test over both transports with -race, and regenerate the spec report
test: vet
	$(GINKGO) $(GINKGO_FLAGS) --json-report=$(REPORT) --output-dir=.
	go run ./cmd/specdoc -in $(REPORT) -out $(SPECS_DOC)

## test-netfake, test-loopback: one transport only (for a CI matrix); the report is not regenerated
test-netfake: vet
	$(GINKGO) $(GINKGO_FLAGS) --label-filter=netfake
test-loopback: vet
	$(GINKGO) $(GINKGO_FLAGS) --label-filter=loopback

vet:
	go vet ./...
	@unformatted=$$(gofmt -l .); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

## fuzz: each fuzz target for FUZZTIME (default 100000 inputs; a count, because
## a duration can fail spuriously at its deadline in Go 1.26: golang/go#75804)
FUZZTIME ?= 100000x
# Each of FuzzLogOpen's inputs opens a store on disk, two syncs: fewer.
LOGFUZZTIME ?= 10000x
fuzz:
	go test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) -parallel 1 ./chat/line
	go test -run '^$$' -fuzz '^FuzzParseText$$' -fuzztime $(FUZZTIME) -parallel 1 ./chat/protocol
	go test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $(FUZZTIME) -parallel 1 ./chat/protocol
	go test -run '^$$' -fuzz '^FuzzAppendText$$' -fuzztime $(FUZZTIME) -parallel 1 ./chat/protocol
	go test -run '^$$' -fuzz '^FuzzLogOpen$$' -fuzztime $(LOGFUZZTIME) -parallel 1 ./chat/history

## lint: staticcheck
lint:
	$(STATICCHECK) ./...

## cover: coverage of the chat and netfake packages by the whole suite
cover:
	$(GINKGO) -r --race --cover --coverpkg=./chat/...,./netfake/... --output-dir=. --coverprofile=coverage.out
	go tool cover -func=coverage.out | tail -1

## bench: load scenarios against fresh servers (natter with history on disk,
## natter -memory, nats-server), one table of them written also to BENCH_OUT,
## then the Go benchmarks; its knobs (N, REPS, ...) are listed in cmd/loadgen/bench.sh
BENCH_OUT ?= $(or $(TMPDIR),/tmp)/natter-bench-table.md
bench:
	BENCH_OUT='$(BENCH_OUT)' bash cmd/loadgen/bench.sh

## bench-readme: put the table of the last make bench (BENCH_OUT) into README.md
## between its <!-- bench-table:start --> and <!-- bench-table:end --> lines
BENCH_README ?= README.md
bench-readme:
	go run ./cmd/loadgen/benchtable -splice '$(BENCH_README)' -table '$(BENCH_OUT)'

## check-specs-doc: fail if the committed spec report differs from the one just generated
check-specs-doc:
	@git diff --exit-code -- $(SPECS_DOC) || { echo "$(SPECS_DOC) is stale: run make test and commit it"; exit 1; }

## run: the server on 127.0.0.1:8080
run:
	go run ./cmd/server

## cert: a self-signed development certificate for 127.0.0.1 and localhost, in natter-data/
cert:
	mkdir -p natter-data
	cd natter-data && go run "$$(go env GOROOT)/src/crypto/tls/generate_cert.go" --host 127.0.0.1,localhost --ecdsa-curve P256

clean:
	rm -f $(REPORT) coverage.out
