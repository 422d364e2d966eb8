.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

SQLC_VERSION := v1.30.0
SQLC := $(CURDIR)/bin/sqlc-$(SQLC_VERSION)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z/-]+:.*## / {printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## watch committed rows become verified webhooks (finds or starts Postgres)
	@scripts/demo

.PHONY: test
test: ## run every test against a real Postgres (finds or starts one)
	@scripts/with-postgres outboxd_test go test -race -count=1 -timeout 10m ./...

.PHONY: bench
bench: ## end-to-end benchmark; prints figures and writes docs/benchmarks.md
	@scripts/with-postgres outboxd_bench go run ./bench -runs 3 -out docs/benchmarks.md

.PHONY: bench-scale
bench-scale: ## a day at 1,000 events/s filled in, measured beside an empty schema; writes docs/benchmarks-scale.md (hours)
	@scripts/with-postgres outboxd_bench_scale go run ./bench -scenario scale -out docs/benchmarks-scale.md

.PHONY: bench-backlog
bench-backlog: ## the daemon's memory under 1,000,000 events, receiver down then up; updates docs/benchmarks-scale.md
	@scripts/with-postgres outboxd_bench_scale go run ./bench -scenario backlog -out docs/benchmarks-scale.md

.PHONY: build
build: ## build bin/outboxd
	go build -o bin/outboxd ./cmd/outboxd

.PHONY: lint
lint: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt would change the files above"; exit 1; }
	go vet ./...

$(SQLC):
	@mkdir -p bin
	GOBIN=$(CURDIR)/bin/sqlc-install go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
	mv bin/sqlc-install/sqlc $(SQLC) && rmdir bin/sqlc-install

.PHONY: generate
generate: $(SQLC) ## regenerate outbox/internal/dbsqlc from sql/
	cd sql && $(SQLC) generate

.PHONY: generate/check
generate/check: generate ## fail if the committed generated code is not what sqlc makes
	@git diff --exit-code -- outbox/internal/dbsqlc || { echo "outbox/internal/dbsqlc is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- outbox/internal/dbsqlc)" || { echo "sqlc made new files: run make generate and commit"; exit 1; }

.PHONY: docs
docs: ## regenerate docs/api.md from outbox/httpapi/openapi.json (make test fails when it is stale)
	go generate ./outbox/httpapi/apidoc

.PHONY: clean
clean: ## remove build output
	rm -rf bin
