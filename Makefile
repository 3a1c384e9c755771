# tapefs — see README.md.
GO       ?= go
BIN      := bin/tapefs
RUN_HOME ?= $(CURDIR)/run/home
RUN_MNT  ?= $(CURDIR)/run/mnt
# The version and commit --version prints (the build information's VCS
# stamp is not always there: GOFLAGS=-buildvcs=false, tarballs).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(HOME)/go/bin/staticcheck)

.PHONY: build run test test-unit test-e2e bench fuzz lint clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tapefs

# Builds, initialises a home under run/ on first start, mounts it and stays
# in the foreground (Ctrl-C unmounts). Tape time runs 20x faster than real.
run: build
	@mkdir -p $(RUN_MNT)
	@echo "tapefs: home $(RUN_HOME), mount $(RUN_MNT)"
	@echo "tapefs: try  cp -a SOMEDIR $(RUN_MNT)/default/put/  then  ls $(RUN_MNT)/default/"
	$(BIN) mount --home $(RUN_HOME) --settle 5s --time-scale 0.05 --flush-age 10s $(RUN_MNT)

# Unit tests, then the end-to-end suite against the built binary and a real
# mount (needs root or fuse3), then the suite again with GOMAXPROCS=1, and
# once more with every daemon's catalog on PostgreSQL (a throwaway server
# the tests start; needs the postgresql package).
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...
	GOMAXPROCS=1 $(GO) test -count=1 -timeout 25m ./test/...
	TAPEFS_E2E_CATALOG=postgres $(GO) test -count=1 -timeout 25m ./test/...
	TAPEFS_TEST_CATALOG=postgres $(GO) test -count=1 -timeout 25m ./archive/

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)

test-e2e: build
	$(GO) test -count=1 -v -timeout 25m ./test/...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./archive/ ./catalog/ ./tape/
	./test/bench.sh

# Native Go fuzz tests, one after the other, FUZZTIME each. Each entry is
# package:FuzzTarget; crashers land in the package's testdata/fuzz/ and
# plain go test runs them from then on.
FUZZTIME ?= 10m
FUZZ_TARGETS += ./catalog:FuzzDecodeRecord ./catalog:FuzzNameRoundTrip
FUZZ_TARGETS += ./api:FuzzName
FUZZ_TARGETS += ./tape:FuzzReadAggregate ./tape:FuzzAggregateNames
FUZZ_TARGETS += ./cli:FuzzShellQuote

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz: $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg; \
	done

lint:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	$(GO) vet ./...
	$(STATICCHECK) ./...

clean:
	rm -rf bin run
