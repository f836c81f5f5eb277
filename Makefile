# The commands the README uses. `make demo` needs no server; `make test` installs and starts
# what the suite needs (Redis, Kafka, Prometheus) and runs every tier.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: fuzz demo test install services services-stop lint typecheck rules bench dashboards clean chaos stack \
	sources-full compiled dist

# setuptools announces every editable install with a warning (a wheel build has none): hidden.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/valeur-monitor demo

services: $(STAMP)
	scripts/services start all

services-stop:
	scripts/services stop all

lint: $(STAMP)
	$(BIN)/ruff check valeur_monitor tests bench deploy setup.py build_support
	$(BIN)/mypy

rules: $(STAMP)
	$(BIN)/valeur-monitor rules check rules/
	$(BIN)/valeur-monitor rules test rules/tests

test: $(STAMP)
	scripts/services start all
	scripts/services install chromium
	$(BIN)/ruff check valeur_monitor tests bench deploy setup.py build_support
	$(BIN)/mypy
	$(BIN)/valeur-monitor rules check rules/
	$(BIN)/valeur-monitor rules test rules/tests
	$(BIN)/valeur-monitor sources check streams/sources
	$(BIN)/python -m pytest
	$(MAKE) compiled

# Minutes of replays with workers killed (kill -9) and a broker restarted; outside the normal
# suite. Figures: docs/reliability.md ("Chaos").
# Coverage-guided fuzzing of the codec (atheris, >= 1 M inputs); figures in docs/reliability.md.
FUZZ_RUNS ?= 1000000
fuzz: $(STAMP)
	$(BIN)/python -m pip install -q 'atheris>=2.3'
	mkdir -p out
	$(BIN)/python -m tests.fuzz.atheris_codec -atheris_runs=$(FUZZ_RUNS) 2> out/fuzz.log \
		|| (grep -v '^INFO: Instrumenting' out/fuzz.log | tail -40; exit 1)
	grep -E '^Done|crash|Traceback' out/fuzz.log || true

chaos: $(STAMP)
	scripts/services start redis && scripts/services start kafka
	VALEUR_CHAOS=1 $(BIN)/python -m pytest tests/chaos -s -ra

dashboards: $(STAMP)
	$(BIN)/python -m deploy.monitoring.generate
	$(BIN)/python -m deploy.k8s.generate

# The build compiled by mypyc (docs/architecture.md "Compiled engine"): the default wheel, built
# in its own venv, where the tests of the compiled modules and the compiled-vs-pure output
# identity (tests/compiled) run. The editable install and the main suite stay pure Python.
# pytest imports the compiled package, not the sources here: no cwd on sys.path, and the
# repository appended after the installed package (for tests/ and bench/ only).
VENV_COMPILED ?= .venv-compiled
COMPILED_TESTS ?= tests/unit/engine tests/unit/test_codec.py tests/unit/test_catalogue.py \
	tests/unit/test_codec_limits.py tests/unit/test_input_bounds.py tests/unit/test_ledger_encoding.py \
	tests/unit/test_service.py tests/unit/test_sharded.py tests/unit/test_build_modes.py \
	tests/unit/test_contract.py tests/unit/test_reproducible.py tests/unit/streaming tests/compiled \
	tests/unit/test_store_record.py tests/unit/test_store_keys.py tests/contract \
	tests/unit/test_store_prepared.py tests/integration/test_redis_layout.py
# Tests that cannot run against the compiled package (none today: tests observe the compiled
# code through seams it calls, e.g. the runtime's hooks, never by replacing its functions).
COMPILED_DESELECT ?=
compiled:
	PY=$(PY) scripts/build-compiled $(VENV_COMPILED)
	VALEUR_COMPILED=1 PYTHONSAFEPATH=1 $(VENV_COMPILED)/bin/python -m pytest -q \
		-p no:cacheprovider -o pythonpath= --import-mode=append $(COMPILED_TESTS) \
		$(addprefix --deselect ,$(COMPILED_DESELECT))

# The shipped wheel in dist/: compiled by mypyc (a C compiler and the Python headers are put
# here first when apt-get can), pure Python with a loud warning if no compiler works, pure on
# purpose with VALEUR_MYPYC=0. docs/architecture.md, "Compiled engine (mypyc)".
dist: $(STAMP)
	-test "$(VALEUR_MYPYC)" = 0 || scripts/build-deps $(BIN)/python
	$(BIN)/python -m pip wheel --no-deps -w dist .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# The compose stack (deploy/compose): secrets written once, then one `compose up`.
CONTAINER_ENGINE ?= $(shell command -v docker >/dev/null 2>&1 && echo docker || echo podman)
stack: $(STAMP)
	scripts/compose-env
	$(CONTAINER_ENGINE) compose -f deploy/compose/compose.yaml up -d --build

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache

# import vs ingest at full size: a 100k-event queue_log + Zendesk export (8 min on a loaded 2-core box)
sources-full: $(STAMP)
	VALEUR_SOURCES_EVENTS=100000 $(BIN)/python -m pytest -q tests/integration/test_import_vs_ingest.py
