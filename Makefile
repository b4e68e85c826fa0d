# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The PostgreSQL server the concurrency tests run against (pytest-django makes its own test_ database).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: run test lint fmt install install-dev system-packages migrate superuser clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The page scripts' development tools (package.json: the type checker, axe-core for the browser
# tests), exactly as package-lock.json has them; again only when either changes.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The system packages the tests use (redis-server, chromium, coturn, node and npm), when missing.
system-packages:
	@bash scripts/system-packages

migrate: install
	$(PY) manage.py migrate --noinput

run: migrate
	$(PY) -m conference.server -b $(HOST) -p $(PORT) conference.asgi:application

superuser: install
	$(PY) manage.py createsuperuser

lint: install-dev node_modules/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	node_modules/.bin/tsc --noEmit -p .

fmt: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install-dev system-packages lint
	node --test tests/js/
	$(PY) -m pytest -m "not postgres"
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -m postgres

# The signaling server under load, against a bare relay and the daphne floor measured in the
# same run (bench/); about a quarter of an hour. Not part of `make test`.
bench: install-dev system-packages
	$(PY) -m bench

clean:
	rm -rf $(VENV) node_modules staticfiles .pytest_cache .ruff_cache
