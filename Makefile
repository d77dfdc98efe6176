# vws — see README.md. `make test` is what CI runs (after test/setup.sh).
GO      ?= go
BIN     := bin/vws
FUZZTIME ?= 60s

.PHONY: all build setup test test-postgres test-short generate verify-generate bench lint fuzz demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/vws

# Installs and starts what the build, the tests and the demo need (idempotent, quiet
# once done). It comes before the build: cgo needs libvirt-dev and libxml2-dev.
setup:
	bash test/setup.sh

# The whole suite, interoperability tests with zeep and Apache Axis 1.4 included
# (they skip with a message where those are not installed; test/setup.sh installs them).
test:
	bash test/setup.sh
	$(MAKE) build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-postgres

# The packages that keep records, and the end-to-end tests that lean on them (a real
# guest's whole life, cold migration, crash recovery, notifications, the audit trail),
# once more against PostgreSQL (`vws serve --database`; test/setup.sh starts it).
VWS_TEST_POSTGRES ?= postgres:///postgres?host=/var/run/postgresql
PG_E2E := TestServeOnePerDatabase|TestServeRidesOutADatabaseRestart|TestCopyALabToPostgres|TestServeStopsWhenItsDatabaseIsTaken|TestOddBytesInAPathAreAudited|TestManagerLifecycle|TestColdMigration|TestManagerCrashDuringDeploy|TestManagerCrashDuringUndeploy|TestManagerCrashAfterCheckIn|TestSubscriptionManagerOperations|TestCreateCloneDestroyOverSOAP|TestCreateBadInputChangesNothing|TestCheckOutLocksAndStates|TestAuditAndPolicy|TestAuditRecordsLifecycle|TestSecurityEndToEnd|TestDeployRefusesEditedManifest|TestNothingHappensUnaudited|TestCrashDuringCreateCloneDestroy|TestCrashExpiryAcrossRestart
test-postgres: build
	VWS_TEST_POSTGRES='$(VWS_TEST_POSTGRES)' $(GO) test -count=1 -timeout 10m ./internal/store/... ./internal/audit/ ./internal/wsrf/ ./internal/notify/ ./repository/... ./cmd/vws/
	VWS_TEST_POSTGRES='$(VWS_TEST_POSTGRES)' $(GO) test -count=1 -timeout 15m -run '^($(PG_E2E))$$' ./test/

test-short:
	$(GO) test -short -count=1 ./...

generate:
	$(GO) generate ./...

# Fails when the checked-in generated code differs from what `make generate` makes.
verify-generate: generate
	@git diff --exit-code -- wsdl schema || { echo "generated code is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- wsdl schema)" || { git status --porcelain -- wsdl schema; echo "generate left untracked files"; exit 1; }

# Go benchmarks (req/s, p50, p99 reported as metrics; vmm's next to raw libvirt calls),
# then the loopback load driver that puts vws next to a bare net/http handler serving
# the same bytes, the image import next to sha256sum and cp, and the Manager's
# operations on real guests next to the raw libvirt calls.
bench: build
	VWS_TEST_POSTGRES='$(VWS_TEST_POSTGRES)' $(GO) test -run='^$$' -bench=. -benchmem -count=1 ./internal/audit/
	$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./test/ ./internal/xpathdoc/ ./internal/qcow2/ ./repository/imagepool/ ./repository/placement/ ./internal/chunkhash/ ./internal/notify/ ./manager/ ./vmm/
	$(GO) run ./test/bench -duration 5s
	$(GO) run ./test/bench -duration 5s -postgres '$(VWS_TEST_POSTGRES)'
	$(GO) run ./test/securitybench -duration 5s
	$(GO) run ./test/imagebench -size 512MiB
	$(GO) run ./test/managerbench -iterations 8 -size 512MiB

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet ./...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzServeSOAP -fuzztime=$(FUZZTIME) -fuzzminimizetime=100x ./internal/container/

demo:
	bash test/setup.sh
	$(MAKE) build
	bash test/demo.sh

clean:
	rm -rf bin

# The real test guest (Debian kernel + busybox initramfs + base qcow2), cached in
# .cache/guest; test/setup.sh builds it too. See test/guest/build.sh.
.PHONY: guest
guest:
	bash test/guest/build.sh
