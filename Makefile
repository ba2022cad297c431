# PerpSignal — `make help` lists every target.
SHELL := /bin/bash
UV ?= uv
PYTEST_WORKERS ?= 2

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: bootstrap
bootstrap: ## Install uv if it is missing (pip), nothing else
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check uv

ASYNCAPI_TOOL := deploy/tools/asyncapi

.PHONY: install
install: install-python $(ASYNCAPI_TOOL)/node_modules/.package-lock.json ## Install every package and dev tool from the lock files

# What `up` and `demo` need: the Python packages only. The AsyncAPI parser (npm) is for the
# checks; without a reachable npm registry its install retries for over a minute.
.PHONY: install-python
install-python: bootstrap
	@$(UV) sync --all-packages --frozen --quiet --compile-bytecode
	@# bytecode of our own packages too (uv compiles only site-packages): with
	@# PYTHONDONTWRITEBYTECODE set, every command would otherwise recompile its imports
	@$(UV) run --frozen --no-sync python -m compileall -q -j 0 libs services >/dev/null
	@$(MAKE) --no-print-directory native

# The domain core (factors, SMC, judge rules, volatility, outcomes) compiled with mypyc into
# the venv; used only while it matches the source (perpsignal_domain/_native.py). About a
# minute when the domain changed, instant otherwise; without a C compiler the domain runs
# as pure Python (same results, slower) and this says so. PERPSIGNAL_NATIVE=0 skips it.
.PHONY: native
native: ## Compile the domain core with mypyc (skipped when up to date)
	@if [ "$${PERPSIGNAL_NATIVE:-1}" = "0" ]; then echo "PERPSIGNAL_NATIVE=0: domain core not compiled"; \
	else $(UV) run --frozen --no-sync python -c \
	  'from perpsignal_domain import _native as n; n.needs_build() and print("compiling the domain core with mypyc (about a minute, once per change)...", flush=True); print(n.build())'; fi

# The AsyncAPI reference parser (npm, pinned by package-lock.json); reinstalled only when the
# lock changes, so later runs work offline. Without npm the AsyncAPI check is skipped.
$(ASYNCAPI_TOOL)/node_modules/.package-lock.json: $(ASYNCAPI_TOOL)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix $(ASYNCAPI_TOOL) --ignore-scripts --no-audit --no-fund --loglevel=error \
	  || echo "npm ci failed: the AsyncAPI parser check will be skipped"; \
	else echo "npm not found: the AsyncAPI parser check will be skipped"; fi

.PHONY: up
up: install-python ## Run the whole stack locally (embedded Kafka + PostgreSQL unless configured)
	$(UV) run --frozen perpsignal up

.PHONY: demo
demo: install-python ## The whole stack replaying bundled real market data, offline; Ctrl-C stops it
	$(UV) run --frozen perpsignal demo

.PHONY: test
test: install ## Run the whole test suite (unit, contract, Kafka, DB, e2e) on 2 workers
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25

.PHONY: test-fast
test-fast: install ## Unit and contract tests only
	$(UV) run --frozen pytest tests/unit tests/contract -q

.PHONY: test-live
test-live: install ## Opt-in checks against the real public vendor endpoints (needs internet)
	$(UV) run --frozen pytest -m live -p no:randomly

.PHONY: fmt
fmt: ## Format the code
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

.PHONY: lint
lint: ## ruff, import contracts (services never import each other), lock freshness
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports
	$(UV) lock --check

.PHONY: validate
validate: install ## Ecosystem validators: k8s + CRD schemas, promtool, OpenAPI, AsyncAPI, PromQL cross-check
	$(UV) run --frozen python deploy/scripts/validate_k8s.py
	@if command -v promtool >/dev/null 2>&1; then \
	  promtool check rules deploy/compose/prometheus/alerts.yml; \
	else echo "promtool not found (Debian: apt-get install prometheus): alert rules NOT checked"; \
	  if [ -n "$$CI" ]; then exit 1; fi; fi
	$(UV) run --frozen python deploy/scripts/check_openapi.py
	@if [ -d $(ASYNCAPI_TOOL)/node_modules/@asyncapi/parser ]; then \
	  node $(ASYNCAPI_TOOL)/validate.mjs schemas/asyncapi.json; \
	else echo "AsyncAPI parser not installed (needs npm): schemas/asyncapi.json NOT checked"; \
	  if [ -n "$$CI" ]; then exit 1; fi; fi
	$(UV) run --frozen python deploy/scripts/check_metrics.py

.PHONY: typecheck
typecheck: ## mypy --strict on every package (libs/*, services/*) and the deploy scripts
	$(UV) run --frozen mypy libs/*/src services/*/src deploy/scripts

.PHONY: check
check: lint typecheck validate test ## What CI runs

.PHONY: schemas
schemas: ## Regenerate the event JSON Schemas and AsyncAPI document in schemas/
	$(UV) run --frozen perpsignal schemas

.PHONY: migrate
migrate: ## Apply database migrations to DATABASE_URL
	$(UV) run --frozen perpsignal migrate

.PHONY: bench
bench: install ## Run every benchmark in bench/ and print one table (+ bench/results/*.json)
	$(UV) run --frozen perpsignal bench --readme

.PHONY: images
images: ## Build one container image per service (needs a docker engine)
	deploy/scripts/build_images.sh

.PHONY: k8s-render
k8s-render: install ## Render the Kubernetes overlays to deploy/k8s/rendered/ (pinned kustomize)
	@mkdir -p deploy/k8s/rendered
	@for o in dev prod; do \
	  $(UV) run --frozen kubectl kustomize deploy/k8s/overlays/$$o > deploy/k8s/rendered/$$o.yaml \
	  && echo "rendered $$o -> deploy/k8s/rendered/$$o.yaml"; done

.PHONY: docs
docs: install ## Regenerate .env.example, the README tables and deploy/compose/.env.example
	$(UV) run --frozen perpsignal docs

.PHONY: clean
clean: ## Remove caches and build outputs (keeps .data/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache bench/results dist build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
