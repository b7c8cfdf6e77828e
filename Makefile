# PayLab — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
VAR := var
export PAYLAB_VAR_DIR ?= $(CURDIR)/$(VAR)

.PHONY: run test install lint format clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(VAR)/secret_key:
	mkdir -p $(VAR)
	$(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@
	chmod 600 $@

## run: embedded mode (SQLite, in-memory channel layer, filesystem broker),
## migrated, demo data on an empty database, web + worker + beat.
run: install $(VAR)/secret_key
	PAYLAB_SECRET_KEY="$$(cat $(VAR)/secret_key)" $(PY) manage.py migrate --noinput
	PAYLAB_SECRET_KEY="$$(cat $(VAR)/secret_key)" $(PY) manage.py collectstatic --noinput -v0
	PAYLAB_SECRET_KEY="$$(cat $(VAR)/secret_key)" $(PY) manage.py demo
	PAYLAB_SECRET_KEY="$$(cat $(VAR)/secret_key)" PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start -f Procfile

## test: the whole suite; PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set.
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(VAR) .pytest_cache

## bench: the merchant API benchmark (issue 3): PayLab in full mode on the local
## PostgreSQL and Redis, side by side with localstripe; see docs/benchmarks.md.
## Change what runs with BENCH_ARGS (bench/api_bench.py --help).
BENCH_ARGS ?= --server daphne --server gunicorn --scenario confirm --scenario manual --compare localstripe
.PHONY: bench
bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(PY) bench/api_bench.py $(BENCH_ARGS)
