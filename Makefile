# Two entry points a new user needs: `make serve` and `make test`.
# Both bootstrap a pinned uv into .tools/ and sync .venv/ from uv.lock (hashes checked).
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: serve test lint bench demo clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

## serve: start the API on SQLite (migrated, ready) at http://127.0.0.1:8000/docs
serve: $(VENV)/.synced
	RECOVERY_ENVIRONMENT=$${RECOVERY_ENVIRONMENT:-local} $(VENV)/bin/recovery-tracker serve

## test: lint, type-check, then the whole suite on SQLite and on a PostgreSQL the tests start
test: $(VENV)/.synced
	scripts/ensure-postgres
	$(VENV)/bin/ruff check api models tests bench
	$(VENV)/bin/ruff format --check api models tests bench
	$(VENV)/bin/mypy api models
	$(VENV)/bin/pytest -n 2 --dist loadgroup

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check api models tests bench
	$(VENV)/bin/ruff format --check api models tests bench
	$(VENV)/bin/mypy api models

## bench: run the benchmarks in bench/ (starts the service and a bare baseline side by side)
bench: $(VENV)/.synced
	$(VENV)/bin/python bench/run.py

demo: $(VENV)/.synced
	$(VENV)/bin/recovery-tracker demo

clean:
	rm -rf .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
