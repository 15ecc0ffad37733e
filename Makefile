# Two commands from a fresh machine with Python 3.11 and pip: `make run` and `make test`.
SHELL := /bin/bash
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
PYTEST_ARGS ?=

.PHONY: run demo test lint typecheck pytest test-fast bench load chaos clean

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv

# Bytecode is compiled at install time: this machine sets PYTHONDONTWRITEBYTECODE, and
# compiling every module at each start would cost seconds of `make run`.
.venv/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode
	.venv/bin/python -m compileall -q src migrations
	touch $@

run: .venv/.synced  ## start the embedded database, migrate and serve on :8000 (PORT overrides)
	$(UV) run --frozen touchstone serve

demo: .venv/.synced  ## load the demo bank and print its sign-ins (again: the same ones)
	.venv/bin/touchstone demo

lint: .venv/.synced
	$(UV) run --frozen ruff check src tests bench migrations
	$(UV) run --frozen ruff format --check src tests bench migrations

typecheck: .venv/.synced
	$(UV) run --frozen mypy

pytest: .venv/.synced
	$(UV) run --frozen pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest  ## every gate: ruff, mypy, alembic check (a test), pytest

test-fast: .venv/.synced  ## developers: skip the slow end-to-end tests
	$(UV) run --frozen pytest -n 2 -m "not slow" $(PYTEST_ARGS)

fuzz: .venv/.synced  ## schemathesis, FUZZ_EXAMPLES (50) cases per operation, and the two-tenant state machine
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-50} $(UV) run --frozen pytest -p no:randomly -q -rP \
		tests/security/test_fuzz.py tests/security/test_fuzz_stateful.py $(PYTEST_ARGS)

bench: .venv/.synced  ## every benchmark, even after one misses its goal; fails if any did
	@mkdir -p bench/results && rm -f bench/results/.failed
	$(UV) run --frozen python -m bench.http_list || echo http_list >> bench/results/.failed
	$(UV) run --frozen python -m bench.jobs_throughput || echo jobs_throughput >> bench/results/.failed
	$(UV) run --frozen python -m bench.event_latency || echo event_latency >> bench/results/.failed
	$(UV) run --frozen python -m bench.idempotency_overhead || echo idempotency_overhead >> bench/results/.failed
	$(UV) run --frozen python -m bench.statement_extraction || echo statement_extraction >> bench/results/.failed
	$(UV) run --frozen python -m bench.statement_workbook || echo statement_workbook >> bench/results/.failed
	$(UV) run --frozen python -m bench.statement_corpus || echo statement_corpus >> bench/results/.failed
	$(UV) run --frozen python -m bench.purity_pipeline || echo purity_pipeline >> bench/results/.failed
	$(UV) run --frozen python -m bench.purity_latency || echo purity_latency >> bench/results/.failed
	$(UV) run --frozen python -m bench.purity_accuracy || echo purity_accuracy >> bench/results/.failed
	$(UV) run --frozen python -m bench.routes || echo routes >> bench/results/.failed
	$(UV) run --frozen python -m bench.attendance_accuracy || echo attendance_accuracy >> bench/results/.failed
	$(UV) run --frozen python -m bench.attendance_search || echo attendance_search >> bench/results/.failed
	$(UV) run --frozen python -m bench.attendance_enrolment || echo attendance_enrolment >> bench/results/.failed
	$(UV) run --frozen python -m bench.attendance_statistics || echo attendance_statistics >> bench/results/.failed
	@if [ -s bench/results/.failed ]; then echo "goal missed or not run:" $$(cat bench/results/.failed); exit 1; fi

load: .venv/.synced  ## two tenants' realistic mix for LOAD_SECONDS (300); p50/p95/p99, 5xx, memory, effects
	$(UV) run --frozen python -m bench.load

chaos: .venv/.synced  ## the load while PostgreSQL restarts, the worker is killed, storage fills, Redis pauses
	$(UV) run --frozen python -m bench.chaos

clean:
	rm -rf .venv $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
