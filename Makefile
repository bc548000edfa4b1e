# secret-proxy: build, test and demo. `make help` lists the targets.
#
# The product modules form a go.work workspace; `go test ./...` at the root does
# not work there (no root module), so every Go command loops over MODULES.
# Tools are pinned as `tool` directives in their own modules under tools/pins/ and
# run with `go tool -modfile=...`, so they never raise the product's dependencies;
# the rest of tools/ is the project's own programs.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

export GOFLAGS ?= -modcacherw
ROOT := $(CURDIR)
MODULES := $(patsubst %/go.mod,%,$(wildcard proto/go.mod sidecar/go.mod orderapp/go.mod e2e/go.mod))
# Modules of our own test and measurement tools, outside the workspace.
TOOL_MODULES := tools/chartcheck tools/loadtest tools/orderapp-load tools/repocheck tools/testsummary
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := $(ROOT)/bin
LDFLAGS_SIDECAR := -s -w -X main.version=$(VERSION)
LDFLAGS_APP := -s -w -X main.version=$(VERSION)

# Tool invocations. GOWORK=off: a tool module is not part of the workspace (and
# -modfile is refused in workspace mode); staticcheck then checks each module on
# its own, which works because every module replaces its siblings.
BUF := GOWORK=off go tool -modfile=$(ROOT)/tools/pins/buf/go.mod buf
STATICCHECK := GOWORK=off go tool -modfile=$(ROOT)/tools/pins/lint/go.mod staticcheck
BENCHSTAT := cd $(ROOT)/tools/pins/lint && GOWORK=off go tool benchstat
GRPCURL := cd $(ROOT)/tools/pins/grpcurl && GOWORK=off go tool grpcurl

# GO_TEST LABEL ARGS runs `go test -json ARGS` through tools/testsummary: go test's ok/FAIL
# lines, failures in full, every skipped test with its reason, and "N passed, N failed,
# N skipped" per module.
GO_TEST := $(ROOT)/tools/scripts/go-test.sh

# step prints what runs, so a CI log reads as a story.
step = printf '\n==> %s\n' "$(1)"

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: generate
generate: ## Regenerate the Go and Python code of the gRPC API from proto/ in place (buf, pinned plugins and Debian generators).
	tools/scripts/generate.sh

.PHONY: check-generated
check-generated: ## Fail, with the diff, when the generated code differs from a fresh generation (done in a temporary copy: the working tree is never written).
	@$(call step,generated code (tools/scripts/check-generated.sh))
	tools/scripts/check-generated.sh

.PHONY: build
build: ## Build secret-proxy, kv-emulator and orderapp into bin/.
	@$(call step,go build into bin/ (version $(VERSION)))
	mkdir -p $(BIN)
	cd sidecar && CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -ldflags '$(LDFLAGS_SIDECAR)' -o $(BIN)/secret-proxy ./cmd/secret-proxy
	cd sidecar && CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -o $(BIN)/kv-emulator ./cmd/kv-emulator
	cd orderapp && CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -ldflags '$(LDFLAGS_APP)' -o $(BIN)/orderapp ./cmd/orderapp

.PHONY: lint
lint: ## gofmt, go vet, staticcheck, buf lint and buf breaking (against HEAD).
	@$(call step,gofmt)
	@out=$$(gofmt -l $(MODULES) tools); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do $(call step,go vet ($$m)); (cd $$m && go vet ./...); done
	@for m in $(TOOL_MODULES); do $(call step,go vet ($$m)); (cd $$m && GOWORK=off go vet ./...); done
	@for m in $(MODULES) $(TOOL_MODULES); do $(call step,staticcheck ($$m)); (cd $$m && $(STATICCHECK) ./...); done
	@$(call step,buf lint)
	cd proto && $(BUF) lint
	@$(call step,buf breaking (against the last commit))
	@if git rev-parse -q --verify HEAD >/dev/null; then cd proto && $(BUF) breaking --against '$(ROOT)/.git#ref=HEAD,subdir=proto'; fi

# The working tree's state when make started (only computed for `make test`): `make test`
# never rewrites the tree, and says so when something did.
TREE_STATE = { git status --porcelain; git diff; } 2>/dev/null | sha256sum
ifneq ($(filter test,$(MAKECMDGOALS)),)
TREE_BEFORE := $(shell $(TREE_STATE))
endif

.PHONY: deadcode
deadcode: ## Functions no program or test reaches (golang.org/x/tools/cmd/deadcode -test, pinned in tools/pins/lint), in every module; not part of make test (about 1.5 min).
	@$(call step,deadcode -test (workspace modules))
	mkdir -p $(BIN)
	cd tools/pins/lint && GOWORK=off go build -o $(BIN)/deadcode golang.org/x/tools/cmd/deadcode
	$(BIN)/deadcode -test $(addprefix ./,$(addsuffix /...,$(MODULES)))
	@for m in $(TOOL_MODULES); do $(call step,deadcode -test ($$m)); (cd $$m && GOWORK=off $(BIN)/deadcode -test ./...); done

.PHONY: test
test: check-generated lint test-go test-python test-tools test-charts ## Every test: generated code, lint, all Go modules with -race (fuzz corpora included), the Python client, repository checks, charts and Dockerfiles; fails if any of it changed the working tree.
	@$(call step,the working tree is as make test found it)
	@if [ "$$($(TREE_STATE))" != "$(TREE_BEFORE)" ]; then \
		echo "make test changed the working tree (git status --porcelain now):" >&2; git status --porcelain >&2; exit 1; fi
	@$(call step,make test: all passed)

.PHONY: test-deps
test-deps: ## Install PostgreSQL from Debian's packages when missing (as root; otherwise say what to install).
	@$(call step,test dependencies (PostgreSQL))
	bash tools/scripts/install-test-deps.sh postgresql

.PHONY: test-go
test-go: test-deps ## Go tests of every workspace module, with -race.
	@for m in $(MODULES); do $(call step,go test -race ($$m)); (cd $$m && $(GO_TEST) $$m -race -count=1 -timeout 15m ./...); done

.PHONY: test-python
test-python: ## The Python client (clients/python) against the real secret-proxy and kv-emulator, with Debian's python3.
	@$(call step,test dependencies (Python client: Debian's python3-grpcio and python3-protobuf))
	bash tools/scripts/install-test-deps.sh python
	@$(call step,python3 -m unittest (clients/python))
	bash clients/python/run-tests.sh

.PHONY: test-tools
test-tools: ## Checks of the repository itself (tools/repocheck: no link leaves it, the scripts under tools/scripts, check-generated) and of tools/testsummary.
	@for m in tools/testsummary tools/repocheck; do $(call step,go test ($$m)); (cd $$m && GOWORK=off $(GO_TEST) $$m -count=1 ./...); done

.PHONY: test-charts
test-charts: ## Offline chart and Dockerfile checks, all in tools/chartcheck's Go tests (render, strict decode, helm lint, Pod Security, kubeconform, helm-unittest, --check), each run once.
	@$(call step,charts and Dockerfiles (tools/scripts/charts.sh test))
	tools/scripts/charts.sh test

.PHONY: test-slow
test-slow: ## The slow tier: every rendered chart dry-run on a real kube-apiserver + etcd, Pod Security restricted enforced.
	@$(call step,slow tier (tools/scripts/charts.sh slow))
	bash tools/scripts/install-test-deps.sh --require etcd
	tools/scripts/charts.sh slow

.PHONY: charts
charts: ## Render the Helm charts into bin/charts/ (to read), and run chartcheck's helm lint and kubeconform tests.
	tools/scripts/charts.sh lint

.PHONY: images
images: ## Build both container images where a Docker engine answers (says so and exits 0 where none does).
	tools/scripts/images.sh

DEMO_FLAGS ?=
.PHONY: demo
demo: build ## Run the whole pod locally (kv-emulator, secret-proxy, orderapp on sqlite) in the foreground; Ctrl-C stops it.
	@$(call step,demo: building the runner)
	cd e2e && go build -o $(BIN)/demo ./cmd/demo
	@$(call step,demo: starting (files in .demo/))
	exec $(BIN)/demo run --bin $(BIN) --dir $(ROOT)/.demo $(DEMO_FLAGS)

DEMO_GRPC ?= 127.0.0.1:50051
.PHONY: demo-grpc
demo-grpc: ## With `make demo` running: grpcurl ListSecrets and GetSecret db-user on the sidecar (DEMO_GRPC=127.0.0.1:50051; reflection is off, so the proto file is passed).
	$(GRPCURL) -plaintext -import-path $(ROOT)/proto -proto secretproxy/v1/secret_service.proto $(DEMO_GRPC) secretproxy.v1.SecretService/ListSecrets
	$(GRPCURL) -plaintext -import-path $(ROOT)/proto -proto secretproxy/v1/secret_service.proto -d '{"name":"db-user"}' $(DEMO_GRPC) secretproxy.v1.SecretService/GetSecret

.PHONY: demo-rotate
demo-rotate: ## With `make demo` running: set a new database password version and watch the app swap its pool.
	cd e2e && go run ./cmd/demo rotate --dir $(ROOT)/.demo

BENCH_COUNT ?= 6
.PHONY: bench
bench: ## Go benchmarks (-benchmem, -count BENCH_COUNT=6) into bench/new.txt; benchstat summary, sidecar vs bare grpc-go, and bench/old.txt vs new when present.
	@$(call step,go test -bench (sidecar, orderapp))
	mkdir -p bench
	for m in sidecar orderapp; do (cd $$m && go test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) ./...); done | tee bench/new.txt
	@$(call step,benchstat bench/new.txt)
	$(BENCHSTAT) $(ROOT)/bench/new.txt
	@$(call step,benchstat -col /server: the sidecar's hit path against a bare grpc-go server)
	$(BENCHSTAT) -filter '.name:LoopbackParallel' -col /server $(ROOT)/bench/new.txt
	@if [ -f bench/old.txt ]; then $(call step,benchstat bench/old.txt bench/new.txt); $(BENCHSTAT) $(ROOT)/bench/old.txt $(ROOT)/bench/new.txt; fi

LOAD_FLAGS ?= --duration 10s --rounds 2 --levels 1,8,64
.PHONY: load
load: build ## The gRPC load harness (ghz): secret-proxy GetSecret hits against a bare grpc-go server; see docs/benchmarks.md.
	@$(call step,load harness: $(LOAD_FLAGS))
	cd tools/loadtest && GOWORK=off go build -o $(BIN)/loadtest .
	$(BIN)/loadtest run --bin $(BIN) $(LOAD_FLAGS)

FLEET_PODS ?= 200
FLEET_SECRETS ?= 4
FLEET_FLAGS ?=
.PHONY: fleet
fleet: build ## A fleet of FLEET_PODS=200 secret-proxy processes x FLEET_SECRETS=4 secrets against one rate-limited kv-emulator (about 8 min on 2 cores); table and .fleet/fleet.svg, see docs/scale.md.
	@$(call step,fleet: $(FLEET_PODS) sidecars x $(FLEET_SECRETS) secrets $(FLEET_FLAGS))
	cd e2e && go build -o $(BIN)/fleet ./cmd/fleet
	$(BIN)/fleet --bin $(BIN) --dir $(ROOT)/.fleet --pods $(FLEET_PODS) --secrets $(FLEET_SECRETS) $(FLEET_FLAGS)

.PHONY: clean
clean: ## Remove build outputs.
	rm -rf $(BIN) .demo .fleet bench
