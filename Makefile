# Callstream: the two commands are `make run` and `make test`; `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
BENCHES := $(filter-out common __init__,$(basename $(notdir $(wildcard bench/*.py))))
PY_PACKAGES := libs/core/src libs/devtools/src apps/cli/src apps/simulator/src services/ingest/src services/routing/src services/kpi-stream/src services/qa/src services/hr/src bench

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## install what the machine lacks: uv, Java/Maven, PostgreSQL, Chromium, buildah (Debian packages, as root)
	@command -v uv >/dev/null 2>&1 || [ -x "$(HOME)/.local/bin/uv" ] || python3 -m pip install --user --quiet uv
	@bash deploy/local/install-system-packages.sh

.PHONY: install
install: tools ## install the workspace (.venv from uv.lock), fetch the Kafka jars, build helm (cached)
	$(UV) sync --frozen --all-packages
	$(RUN) callstream kafka fetch
	bash deploy/helm/install-helm.sh --if-go

.PHONY: asterisk
asterisk: install ## build the test switch, Asterisk, from shared/vendor once (~3 min; cached in ~/.cache/callstream)
	$(RUN) callstream asterisk build

.PHONY: proto
proto: ## regenerate Python code and descriptors from proto/ (refuses breaking changes)
	$(RUN) python proto/tools/protogen.py generate

.PHONY: proto-check
proto-check: ## fail on stale generated code or a breaking change against the committed descriptors
	$(RUN) python proto/tools/protogen.py check

.PHONY: docs
docs: ## regenerate docs/topics.md from the topic registry
	$(RUN) callstream topics doc > docs/topics.md

.PHONY: dashboards
dashboards: ## regenerate the dashboards' JSON (deploy/grafana/dashboards and the chart's copy) from build.py
	$(RUN) python deploy/grafana/build.py

.PHONY: image
image: ## build the one container image (Containerfile; buildah, cached by the inputs' hash) and print its name
	bash deploy/image/build.sh

.PHONY: helm-lint
helm-lint: ## build helm (go install, cached in ~/.cache/callstream) and lint, render and run the chart in the image
	bash deploy/helm/install-helm.sh
	$(RUN) pytest tests/deploy -q

.PHONY: lint
lint: ## ruff
	$(RUN) ruff check .

.PHONY: typecheck
typecheck: ## mypy on every package and bench/
	$(RUN) mypy $(PY_PACKAGES)

.PHONY: test
test: install asterisk lint typecheck proto-check ## everything CI runs: install, lint, types, contracts, all tests
	$(RUN) callstream topics doc | diff -u docs/topics.md - || (echo "docs/topics.md is stale: run make docs" && exit 1)
	$(RUN) pytest

.PHONY: bench
bench: install ## run every benchmark in bench/ and print the figures (gRPC ones build bench/loadgen: go)
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(RUN) python -m bench.$$b || exit 1; done

.PHONY: profile-kpi
profile-kpi: install ## profile the KPI worker (cProfile, one simulated day): CPU split by stage, stats in .local/
	$(RUN) python -m bench.kpi_stream profile

.PHONY: run
run: install ## start Kafka, apply topics, every service and the demo simulator (its calls routed by the routing service over gRPC; `callstream up --switch asterisk`: the real Asterisk instead); Ctrl-C stops all
	$(RUN) callstream up

.PHONY: doctor
doctor: ## say what is missing (Java, Maven, ports) in plain words
	$(RUN) callstream doctor

.PHONY: clean
clean: ## remove local state (.local/: Kafka data, chDB data, SQLite files); keeps the fetched jars
	rm -rf .local/run .local/kafka/dev
