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

# make install: PREFIX for the binary and the unit; mount(8) looks for
# mount helpers in /sbin only, so the mount.fuse.tapefs link goes there
# (SBINDIR). DESTDIR stages the whole tree (packaging, the tests).
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= /sbin
UNITDIR  ?= $(PREFIX)/lib/systemd/system
LOGROTATEDIR ?= /etc/logrotate.d
MANDIR   ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
DESTDIR  ?=
# Elastic Tape's script names: links to tapefs next to it (relative, so
# that a DESTDIR tree moved into place still works), run as put, get, rm
# and ls with Elastic Tape's options (cli/et.go).
ET_NAMES := et_put.py et_get.py et_rm.py et_ls.py

.PHONY: build deps install man run test test-unit test-e2e bench fuzz lint clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tapefs

# The Debian packages the tests need (dist/deps.sh holds the one list):
# installs the missing ones as root, otherwise names the command to run.
deps:
	@sh dist/deps.sh

# The man pages (bin/man/tapefs.1, tapefs-COMMAND.1, beside BIN), made from the help
# text of the built binary so that they say what --help says.
MANOUT   := $(dir $(BIN))man
man: build
	rm -rf $(MANOUT) && $(BIN) man $(MANOUT) >/dev/null

install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(LOGROTATEDIR)
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0644 $(MANOUT)/*.1 $(DESTDIR)$(MANDIR)/man1/
	$(BIN) completion bash > $(DESTDIR)$(BASHCOMPDIR)/tapefs
	$(BIN) completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_tapefs
	$(BIN) completion fish > $(DESTDIR)$(FISHCOMPDIR)/tapefs.fish
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/tapefs
	ln -sf $(BINDIR)/tapefs $(DESTDIR)$(SBINDIR)/mount.fuse.tapefs
	for n in $(ET_NAMES); do ln -sf tapefs $(DESTDIR)$(BINDIR)/$$n; done
	sed 's|@BINDIR@|$(BINDIR)|g' dist/tapefs.service.in > $(DESTDIR)$(UNITDIR)/tapefs.service
	install -m 0644 dist/tapefs.logrotate $(DESTDIR)$(LOGROTATEDIR)/tapefs
	@echo "installed: $(BINDIR)/tapefs, $(SBINDIR)/mount.fuse.tapefs, $(UNITDIR)/tapefs.service, $(ET_NAMES:%=$(BINDIR)/%), man pages in $(MANDIR)/man1, completions for bash, zsh and fish"

# Builds, initialises a home under run/ on first start, mounts it and stays
# in the foreground (Ctrl-C unmounts). Tape time runs 20x faster than real.
# A daemon that died (kill -9, a crash) leaves a dead mount on RUN_MNT,
# on which mkdir fails ("Transport endpoint is not connected"): it is
# detached first, so that make run starts after any earlier end.
run: build
	@if ! mkdir -p '$(RUN_MNT)' 2>/dev/null; then \
		echo "tapefs: detaching the dead mount of an earlier run at $(RUN_MNT)"; \
		fusermount3 -u -z '$(RUN_MNT)' 2>/dev/null || umount -l '$(RUN_MNT)'; \
		mkdir -p '$(RUN_MNT)'; \
	fi
	@echo "tapefs: home $(RUN_HOME), mount $(RUN_MNT)"
	@echo "tapefs: in another shell:  export PATH=$(CURDIR)/bin:\$$PATH TAPEFS_HOME=$(RUN_HOME)"
	@echo "tapefs: try  cp -a SOMEDIR $(RUN_MNT)/default/put/  then  ls $(RUN_MNT)/default/"
	$(BIN) mount --home $(RUN_HOME) --settle 5s --time-scale 0.05 --flush-age 10s --copies 2 $(RUN_MNT)

# Unit tests, then the end-to-end suite against the built binary and a real
# mount (needs root or fuse3), then the suite again with GOMAXPROCS=1 and an
# hour of kernel cache for workspace and batch directories (every change
# made behind the mount's back must be notified), and
# once more with every daemon's catalog on PostgreSQL (a throwaway server
# the tests start; needs the postgresql package).
# Skipped end-to-end tests (not root, say) are listed at the end, never
# silent: the suite appends them to SKIPS. A catalog transaction opened
# inside another panics in every run (catalog/nesting.go): on PostgreSQL it
# holds two pool connections, and enough of them starve the pool.
SKIPS := $(CURDIR)/bin/e2e-skipped.txt
test: export TAPEFS_CATALOG_NESTING = panic
test: deps build
	@rm -f $(SKIPS)
	$(GO) vet ./...
	TAPEFS_SKIP_REPORT=$(SKIPS) $(GO) test -count=1 -timeout 25m ./...
	TAPEFS_SKIP_REPORT=$(SKIPS) GOMAXPROCS=1 TAPEFS_TEST_KERNEL_CACHE=1h $(GO) test -count=1 -timeout 25m ./test/...
	TAPEFS_SKIP_REPORT=$(SKIPS) TAPEFS_E2E_CATALOG=postgres $(GO) test -count=1 -timeout 25m ./test/...
	TAPEFS_TEST_CATALOG=postgres $(GO) test -count=1 -timeout 25m ./archive/
	@if [ -s $(SKIPS) ]; then echo "make test: end-to-end tests SKIPPED on this machine:"; sort $(SKIPS) | uniq -c; fi

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test)

test-e2e: build
	$(GO) test -count=1 -v -timeout 25m ./test/...

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./archive/ ./catalog/ ./tape/
	./test/bench.sh
	./test/bench_put.sh
	./test/bench_recall.sh
	./test/bench_meta.sh
	./test/bench_catalog.sh
	./test/bench_rss.sh
	./test/bench_hosts.sh
	./test/bench_hosts_speedup.sh

# Native Go fuzz tests, one after the other, FUZZTIME each. Each entry is
# package:FuzzTarget; crashers land in the package's testdata/fuzz/ and
# plain go test runs them from then on.
FUZZTIME ?= 10m
FUZZ_TARGETS += ./catalog:FuzzDecodeRecord ./catalog:FuzzNameRoundTrip
FUZZ_TARGETS += ./catalog:FuzzFileRecord ./catalog:FuzzDirName ./catalog:FuzzDirEntry
FUZZ_TARGETS += ./api:FuzzName
FUZZ_TARGETS += ./tape:FuzzReadAggregate ./tape:FuzzAggregateNames ./tape:FuzzLoadCartridge ./tape:FuzzReadLabel
FUZZ_TARGETS += ./cli:FuzzShellQuote
FUZZ_TARGETS += ./config:FuzzParseINI ./cli:FuzzParseList ./api/server:FuzzControlRequest

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
