# Two commands do everything: `make run` (serve the demo study) and `make test` (the whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/collabstudy_test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: install install-test run test lint bench-relay bench-dashboard bench-faults soak clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,local,train]'
	touch $@

# checkov checks the deploy files (tests/deploy); its many pins live in a venv of their own.
TOOLS := .tools
$(TOOLS)/bin/checkov:
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q 'checkov==3.3.30'

# The CollabLLM authors' prompts come from their own wheel, installed without its dependencies
# (vLLM, torch, wandb...) and never imported: collab_models/published_prompts.py reads its files.
# The marker names the version, so a new pin installs on the next `make run` or `make test`.
COLLABLLM_VERSION := 0.0.8
$(VENV)/.installed-collabllm-$(COLLABLLM_VERSION): $(BIN)/python
	$(BIN)/pip install -q --no-deps collabllm==$(COLLABLLM_VERSION)
	touch $@

install: $(VENV)/.installed $(VENV)/.installed-collabllm-$(COLLABLLM_VERSION)

install-test: $(VENV)/.installed-test $(VENV)/.installed-collabllm-$(COLLABLLM_VERSION) \
	$(TOOLS)/bin/checkov

# The demo runs with DEBUG on: the development SECRET_KEY, plain HTTP and no HSTS.
run: export DEBUG ?= 1
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py load_study deploy/studies/collabllm-cowriting.yaml --slug demo --offline --if-changed
	$(BIN)/python manage.py demo_setup --port $(PORT) --host $(HOST)
	$(BIN)/python -m uvicorn studyapp.asgi:application --host $(HOST) --port $(PORT) \
		--ws-per-message-deflate false --timeout-graceful-shutdown 30

# makemigrations --check runs without a connection pool: its database does not exist, and a
# pool would wait DB_CONNECT_TIMEOUT for it before the check goes on.
test: install-test
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		DB_POOL_MAX_SIZE=0 $(BIN)/python manage.py makemigrations --check --dry-run \
		--settings=studyapp.settings_test
	$(BIN)/ruff check .
	$(BIN)/mypy
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy

# The benchmarks serve plain HTTP from throwaway databases with DEBUG off, as in production.
bench-relay bench-dashboard bench-faults soak: export SECRET_KEY ?= bench-only-key-of-throwaway-databases
bench-relay bench-dashboard bench-faults soak: export SECURE_SSL_REDIRECT ?= 0
bench-relay bench-dashboard bench-faults soak: export SECURE_COOKIES ?= 0

# The app with each hand-written piece on and off, side by side in interleaved rounds of 200
# sends spread over a second and 200 in one instant (bench/README.md, Relay).
bench-relay: install-test
	$(BIN)/python -m bench.pieces --rounds 3 --minutes 9 --streams 200 --spread 1

bench-dashboard: install-test
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} $(BIN)/python -m bench.dashboard

# Starts PostgreSQL, Redis and the app of its own; FAULTS_ARGS=--quick for a short run
# (bench/README.md, Fault campaign).
bench-faults: install-test
	$(BIN)/python -m bench.faults $(FAULTS_ARGS)

# The production topology (Caddy, three ASGI processes, two model replicas) under stepped load,
# then through its faults (bench/README.md, Soak). SOAK_ARGS="--steps 50,100 --scenarios kill9"
# for a short run.
soak: install-test
	$(BIN)/python -m bench.load $(SOAK_ARGS)

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles
