# Custos — build, test and demo.
# `make demo` and `make test` work on a fresh Debian machine with Go: they install what they need.

# The Go toolchain for every recipe and every `go` the tests start. The go command fetches it
# from the module proxy on first use; go.mod requires it, so an older local Go fails clearly.
export GOTOOLCHAIN := go1.27.3

GO        ?= go
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_DIR  ?= $(CURDIR)/.demo
FUZZTIME  ?= 60s
# Every fuzz target, as package:Fuzzer (make test-long runs each for FUZZTIME).
FUZZERS   := ./threshold:FuzzParseShare ./threshold:FuzzParseCommitments \
             ./keysvc/wrapkey:FuzzParse ./keysvc/wrapkey:FuzzUnwrap \
             ./keysvc/ledger:FuzzParseEntry ./keysvc/ledger:FuzzMarshalEntry \
             ./keysvc/ledger:FuzzParseCheckpoint ./keysvc/ledger:FuzzVerifyCheckpoint \
             ./keysvc/ledger:FuzzParseProof ./keysvc/identity:FuzzParseURI \
             ./keysvc/kek:FuzzParseEscrowShare ./keysvc/kek:FuzzOpenEscrowShare \
             ./keysvc/ceremony:FuzzParseProposal ./keysvc/ceremony:FuzzMarshalProposal \
             ./keysvc/officer:FuzzParsePublicKey ./keysvc/officer:FuzzParseSignature \
             ./keysvc/officer:FuzzParsePKCS11URI ./keysvc/ledger:FuzzVerifyStatement \
             ./keysvc/audit:FuzzReader ./keysvc/audit:FuzzParseEntry \
             ./backup/custosage:FuzzDecodeContext ./backup/custosage:FuzzParseStanza \
             ./backup/policy:FuzzParse ./backup/archive:FuzzParseManifest \
             ./keysvc/reqsig:FuzzParse ./keysvc/identity:FuzzParseCSR ./keysvc/ledger:FuzzFoldOf ./internal/strictjson:FuzzCheck \
             ./keysvc/audit:FuzzStatementParse ./keysvc/audit:FuzzStatementWrite

export CGO_ENABLED := 1

# Test tools installed with `go install`, pinned. They go to $(go env GOBIN), or the first
# $(go env GOPATH)/bin, where the tests also look for them.
VERSITYGW_VERSION := v1.8.0
TOOLS_BIN ?= $(shell export GOTOOLCHAIN=$(GOTOOLCHAIN); gobin=$$($(GO) env GOBIN); if [ -n "$$gobin" ]; then echo "$$gobin"; else echo "$$($(GO) env GOPATH | cut -d: -f1)/bin"; fi)

.PHONY: all build deps tools versitygw vulncheck demo test test-long bench fuzz vet clean

all: build

# System packages: SoftHSM (PKCS#11 token for tests and demo), a C compiler for cgo, and the
# age and zstd CLIs (disaster-recovery decryption with age-plugin-custos is tested with them), and
# restic (make bench-backup compares with it).
deps: browser
	@if ! command -v softhsm2-util >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1 || \
	    ! command -v age >/dev/null 2>&1 || ! command -v zstd >/dev/null 2>&1 || \
	    ! command -v restic >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then \
		echo "installing softhsm2, gcc, age, zstd, restic and jq with apt-get"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 gcc libc6-dev age zstd restic jq >/dev/null; \
	fi
	@command -v softhsm2-util >/dev/null || { echo "softhsm2-util still missing"; exit 1; }
	@command -v age >/dev/null || { echo "age still missing"; exit 1; }

# Debian's chromium and poppler-utils: a test renders the custody report in headless chromium, in
# a 1280 px window and printed to A4, and reads the PDF's words with pdftotext. Idempotent.
.PHONY: browser
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then \
		echo "installing chromium and poppler-utils with apt-get"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils >/dev/null; \
	fi
	@command -v chromium >/dev/null || { echo "chromium still missing"; exit 1; }
	@command -v pdftotext >/dev/null || { echo "pdftotext still missing"; exit 1; }

# Debian's systemd package, only if systemd-analyze is missing: deploy's tests verify the custosd
# unit with systemd-analyze (offline: no systemd as PID 1 needed) and its sysusers and tmpfiles
# files with systemd-sysusers and systemd-tmpfiles. Idempotent; make test gets it through deps.
.PHONY: systemd-analyze
deps: systemd-analyze
systemd-analyze:
	@if ! command -v systemd-analyze >/dev/null 2>&1; then \
		echo "installing systemd (systemd-analyze) with apt-get"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null; \
	fi
	@command -v systemd-analyze >/dev/null || { echo "systemd-analyze still missing"; exit 1; }

# Tools the integration tests run (S3 server for backup/s3). Idempotent.
tools: versitygw

# versitygw (S3-compatible server, posix backend) at VERSITYGW_VERSION: kept if the binary in
# PATH or TOOLS_BIN already is that version (per its Go build info), installed otherwise.
versitygw:
	@want='$(VERSITYGW_VERSION)'; found=""; \
	for c in "$$(command -v versitygw 2>/dev/null)" "$(TOOLS_BIN)/versitygw"; do \
		[ -n "$$c" ] && [ -x "$$c" ] || continue; \
		v=$$($(GO) version -m "$$c" 2>/dev/null | awk '$$1 == "mod" && $$2 == "github.com/versity/versitygw" { print $$3 }'); \
		if [ "$$v" = "$$want" ]; then found="$$c"; break; fi; \
		echo "versitygw: $$c is version '$$v', not $$want"; \
	done; \
	if [ -n "$$found" ]; then \
		echo "versitygw $$want already installed: $$found"; \
	else \
		echo "versitygw: installing github.com/versity/versitygw/cmd/versitygw@$$want into $(TOOLS_BIN) (go install; a few minutes on a cold module cache)"; \
		mkdir -p "$(TOOLS_BIN)" && \
		GOBIN="$(TOOLS_BIN)" CGO_ENABLED=0 $(GO) install github.com/versity/versitygw/cmd/versitygw@$$want </dev/null && \
		echo "versitygw $$want installed: $(TOOLS_BIN)/versitygw"; \
	fi

build:
	$(GO) build ./...
	$(GO) build -o bin/ ./cmd/...

# gofmt of the same toolchain (GOTOOLCHAIN), not whichever gofmt is first in PATH.
vet:
	$(GO) vet ./...
	@gofmt="$$($(GO) env GOROOT)/bin/gofmt"; [ -x "$$gofmt" ] || { echo "no gofmt at $$gofmt"; exit 1; }; \
		out=$$("$$gofmt" -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')) || exit 1; \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Known vulnerabilities in the code the build calls: govulncheck at GOVULNCHECK_VERSION against a
# database built offline from the golang.org/x/vulndb module at VULNDB_VERSION (its data/osv
# reports, indexed by its own cmd/indexdb); both come from the Go module proxy and nothing else
# is fetched. Fails when called code is affected. Both are kept in CACHE_DIR, keyed by version,
# so a second run only scans. To update the database, set VULNDB_VERSION to a newer
# pseudo-version of golang.org/x/vulndb (docs/operations.md).
GOVULNCHECK_VERSION := v1.9.0
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
CACHE_DIR   := $(CURDIR)/.cache
GOVULNCHECK := $(CACHE_DIR)/tools/$(GOTOOLCHAIN)/govulncheck@$(GOVULNCHECK_VERSION)/govulncheck
VULNDB_DIR  := $(CACHE_DIR)/vulndb/$(VULNDB_VERSION)
# e.g. VULNCHECK_FLAGS='-show verbose' to list uncalled advisories too.
VULNCHECK_FLAGS ?=

vulncheck: $(GOVULNCHECK) $(VULNDB_DIR)/index/db.json
	$(GOVULNCHECK) -db file://$(VULNDB_DIR) $(VULNCHECK_FLAGS) ./...

$(GOVULNCHECK):
	@echo "vulncheck: installing golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) with $(GOTOOLCHAIN)"
	@mkdir -p "$(@D)" && GOBIN="$(@D)" $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) </dev/null

# Built in a temporary directory and renamed into place, so an interrupted build leaves nothing
# that looks complete; databases of other versions are removed.
$(VULNDB_DIR)/index/db.json:
	@set -e; mkdir -p "$(CACHE_DIR)/vulndb"; \
	tmp=$$(mktemp -d "$(CACHE_DIR)/vulndb/.build.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@$(VULNDB_VERSION)"; \
	$(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) </dev/null >"$$tmp/download.json" || \
		{ cat "$$tmp/download.json"; exit 1; }; \
	src=$$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p' "$$tmp/download.json"); \
	n=$$(find "$$src/data/osv" -maxdepth 1 -name '*.json' | wc -l); \
	[ "$$n" -gt 0 ] || { echo "vulncheck: no reports in $$src/data/osv"; exit 1; }; \
	GOBIN="$$tmp/bin" $(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) </dev/null; \
	"$$tmp/bin/indexdb" -vulns "$$src/data/osv" -out "$$tmp/db"; \
	m=$$(find "$$tmp/db/ID" -maxdepth 1 -name '*.json' | wc -l); \
	[ "$$m" -eq "$$n" ] || { echo "vulncheck: database has $$m entries, $$src/data/osv has $$n"; exit 1; }; \
	find "$(CACHE_DIR)/vulndb" -mindepth 1 -maxdepth 1 ! -name '.build.*' -exec rm -rf {} +; \
	mv "$$tmp/db" "$(VULNDB_DIR)"; \
	echo "vulncheck: $$n reports indexed into $(VULNDB_DIR)"

# The node API's OpenAPI document (keysvc/httpapi/openapi.yaml) linted by Redocly CLI with its
# recommended rules, strict (redocly.yaml). @redocly/cli at REDOCLY_VERSION (no dependencies of its own;
# Node.js >= 20.19 and npm) comes from the npm registry, installed once into
# .cache/redocly/REDOCLY_VERSION through a temporary directory, so an interrupted install leaves
# nothing that looks complete. Telemetry and update checks are off; stdin is closed.
REDOCLY_VERSION := 2.77.0
REDOCLY_DIR     := $(CACHE_DIR)/redocly/$(REDOCLY_VERSION)
REDOCLY         := $(REDOCLY_DIR)/node_modules/.bin/redocly

.PHONY: lint-openapi
lint-openapi: $(REDOCLY)
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(REDOCLY) lint --config redocly.yaml keysvc/httpapi/openapi.yaml </dev/null

$(REDOCLY):
	@if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then \
		echo "installing nodejs and npm with apt-get"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	@set -e; mkdir -p "$(CACHE_DIR)/redocly"; \
	tmp=$$(mktemp -d "$(CACHE_DIR)/redocly/.install.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	echo "lint-openapi: installing @redocly/cli@$(REDOCLY_VERSION) from npm into $(REDOCLY_DIR)"; \
	npm install --prefix "$$tmp" --no-audit --no-fund --no-update-notifier --loglevel=error \
		"@redocly/cli@$(REDOCLY_VERSION)" </dev/null; \
	"$$tmp/node_modules/.bin/redocly" --version </dev/null | grep -qx '$(REDOCLY_VERSION)' || \
		{ echo "lint-openapi: the installed redocly is not $(REDOCLY_VERSION)"; exit 1; }; \
	rm -rf "$(REDOCLY_DIR)"; mv "$$tmp" "$(REDOCLY_DIR)"

# Prometheus alert rules (deploy/prometheus): promtool checks the example rules and runs their
# unit tests (which alerts fire on which series). promtool is taken out of Debian's prometheus
# package without installing it (installing it would also start a Prometheus server where systemd
# runs): the .deb is downloaded and unpacked into .cache/promtool; promtool is one static binary.
PROMTOOL := $(CACHE_DIR)/promtool/usr/bin/promtool
.PHONY: check-alerts
check-alerts: $(PROMTOOL)
	$(PROMTOOL) check rules deploy/prometheus/custos-alerts.yml
	cd deploy/prometheus && $(abspath $(PROMTOOL)) test rules custos-alerts.test.yml

$(PROMTOOL):
	@set -e; mkdir -p "$(CACHE_DIR)"; tmp=$$(mktemp -d "$(CACHE_DIR)/.promtool.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	echo "check-alerts: unpacking promtool from Debian's prometheus package into $(CACHE_DIR)/promtool"; \
	( cd "$$tmp" && apt-get download prometheus >/dev/null 2>&1 ) || { \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		( cd "$$tmp" && apt-get download prometheus >/dev/null ); }; \
	dpkg-deb -x "$$tmp"/prometheus_*.deb "$$tmp/root"; \
	"$$tmp/root/usr/bin/promtool" --version >/dev/null; \
	rm -rf "$(CACHE_DIR)/promtool"; mv "$$tmp/root" "$(CACHE_DIR)/promtool"

# Unit tests with the race detector, and the SoftHSM and versitygw integration tests, which
# must run: CUSTOS_REQUIRE_SOFTHSM=1 turns a missing SoftHSM or versitygw into a failure
# instead of a skip. The rolling-upgrade test builds the previous release from this clone's git
# history: CUSTOS_REQUIRE_UPGRADE=1 makes a missing previous release a failure, except in a shallow
# clone, which has no history to build it from (the test then skips and says why).
REQUIRE_UPGRADE := $(shell [ "$$(git rev-parse --is-shallow-repository 2>/dev/null)" = false ] && echo 1)
test: deps vulncheck tools vet lint-openapi check-alerts
	CUSTOS_REQUIRE_SOFTHSM=1 CUSTOS_REQUIRE_UPGRADE=$(REQUIRE_UPGRADE) $(GO) test -race -count=1 -timeout 20m ./...

# Slow runs: every fuzzer for FUZZTIME.
test-long: deps
	@for f in $(FUZZERS); do \
		pkg=$${f%%:*}; name=$${f##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	done

# Whole-cluster benches (custos dev bench): a fresh 3-node cluster in BENCH_DIR (default: a temporary
# directory, removed afterwards), always stopped at the end, even on failure or interrupt.
# The key-op phase (unwrap, wrap, datakey at concurrency 1, 8, 32, then batch unwrap of 100) runs
# KEYOPS_DURATION per point and writes its figures to BENCH_RESULTS (JSON) as well.
BENCH_DIR      ?=
BENCH_ARGS     ?= --concurrency 1,32,256 --duration 10s --warmup 2s --failovers 3 --pauses 3
KEYOPS_DURATION ?= 20s
BENCH_RESULTS  ?= $(CURDIR)/bench-results/keyops.json
KEYOPS_ARGS    ?= --keyops --keyops-concurrency 1,8,32 --keyops-duration $(KEYOPS_DURATION) --batch-size 100 --results $(BENCH_RESULTS)
bench_cluster = set -e; dir="$(BENCH_DIR)"; tmp=""; \
	if [ -z "$$dir" ]; then tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/custos-bench.XXXXXX"); dir="$$tmp/cluster"; \
	elif [ -e "$$dir/cluster.json" ]; then echo "$$dir already holds a cluster"; exit 1; fi; \
	trap 'bin/custos dev down --dir "$$dir" || true; [ -z "$$tmp" ] || rm -rf "$$tmp"' EXIT; \
	trap 'exit 130' INT TERM; \
	bin/custos dev up --nodes 3 --dir "$$dir"

.PHONY: bench-rss bench-keyops bench-backup
bench: deps
	CUSTOS_REQUIRE_SOFTHSM=1 $(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) build -o bin/ ./cmd/custos ./cmd/custosd
	@$(bench_cluster); bin/custos dev bench --dir "$$dir" $(BENCH_ARGS) $(KEYOPS_ARGS); \
	bin/custos dev bench-backup --dir "$$dir" $(BACKUP_BENCH_ARGS)

# The key-op phase alone, on a fresh cluster (~4 min at the default KEYOPS_DURATION).
bench-keyops: deps
	$(GO) build -o bin/ ./cmd/custos ./cmd/custosd
	@$(bench_cluster); bin/custos dev bench --dir "$$dir" --concurrency none --failovers 0 --pauses 0 $(KEYOPS_ARGS)

# Backup and restore throughput, stored size and peak RSS of custos backup run|restore (local
# target) beside tar | zstd -1 | age and restic, in BACKUP_BENCH_ROUNDS interleaved rounds, on a
# generated BACKUP_BENCH_MB corpus and a BACKUP_BENCH_TEXT_MB corpus of the machine's text files
# (Go's source, C headers, /usr/share/doc and man pages; 0: none), with the targets.
BACKUP_BENCH_MB ?= 1024
BACKUP_BENCH_TEXT_MB ?= 320
BACKUP_BENCH_ROUNDS ?= 3
BACKUP_BENCH_ARGS ?= --mb $(BACKUP_BENCH_MB) --text-mb $(BACKUP_BENCH_TEXT_MB) --rounds $(BACKUP_BENCH_ROUNDS) --results $(CURDIR)/bench-results/backup.json
bench-backup: deps
	$(GO) build -o bin/ ./cmd/custos ./cmd/custosd
	@$(bench_cluster); bin/custos dev bench-backup --dir "$$dir" $(BACKUP_BENCH_ARGS)

# RSS and disk of every node at 1M then 5M log entries, on one cluster (long: ~15-30 min), with
# the load figures at each size.
bench-rss: deps
	$(GO) build -o bin/ ./cmd/custos ./cmd/custosd
	@$(bench_cluster); \
	bin/custos dev bench --dir "$$dir" --failovers 0 --pauses 0 --fill 1000000; \
	bin/custos dev bench --dir "$$dir" --failovers 0 --pauses 0 --fill 5000000

# KEEP=1 leaves the demo cluster running.
demo: deps tools build
	@rm -rf $(DEMO_DIR)
	bin/custos demo --dir $(DEMO_DIR) --custosd bin/custosd $(if $(KEEP),--keep)

clean:
	rm -rf bin $(DEMO_DIR)
