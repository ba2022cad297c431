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

.PHONY: install
install: bootstrap ## Install every package and dev tool from the lock file
	@$(UV) sync --all-packages --frozen --quiet

.PHONY: up
up: install ## Run the whole stack locally (embedded Kafka + PostgreSQL unless configured)
	$(UV) run --frozen perpsignal up

.PHONY: demo
demo: install ## The whole stack replaying bundled real market data, offline; Ctrl-C stops it
	$(UV) run --frozen perpsignal demo

.PHONY: test
test: install ## Run the whole test suite (unit, contract, Kafka, DB, e2e) on 2 workers
	$(UV) run --frozen pytest -n $(PYTEST_WORKERS) --dist loadfile

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

.PHONY: typecheck
typecheck: ## mypy --strict on libs/common
	$(UV) run --frozen mypy libs/common/src

.PHONY: check
check: lint typecheck test ## What CI runs

.PHONY: schemas
schemas: ## Regenerate the event JSON Schemas and AsyncAPI document in schemas/
	$(UV) run --frozen perpsignal schemas

.PHONY: migrate
migrate: ## Apply database migrations to DATABASE_URL
	$(UV) run --frozen perpsignal migrate

.PHONY: bench
bench: install ## Run every benchmark in bench/ and print one table (+ bench/results/*.json)
	$(UV) run --frozen perpsignal bench

.PHONY: images
images: ## Build one container image per service (needs a docker engine)
	deploy/scripts/build_images.sh

.PHONY: k8s-render
k8s-render: install ## Render the Kubernetes overlays to deploy/k8s/rendered/
	$(UV) run --frozen python deploy/scripts/k8s_render.py --all

.PHONY: docs
docs: install ## Regenerate .env.example, the README tables and deploy/compose/.env.example
	$(UV) run --frozen perpsignal docs
	$(UV) run --frozen python deploy/scripts/settings_env.py --write-env-example

.PHONY: clean
clean: ## Remove caches and build outputs (keeps .data/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache bench/results dist build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
