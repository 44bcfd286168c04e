# Every target creates or refreshes .venv from a Python >= 3.13 found on this machine.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo map-demo test check lint typecheck bench clean venv shell

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/find-python.sh
	@test -x $(PY) || "$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# A shell with .venv/bin first on the PATH, so that `pipes` is found; `exit` leaves it.
shell: $(STAMP)
	@echo "pipes: $(CURDIR)/$(VENV)/bin is first on the PATH in this shell (exit to leave)" >&2
	@VIRTUAL_ENV="$(CURDIR)/$(VENV)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" "$${SHELL:-/bin/sh}" -i

demo: $(STAMP)
	$(VENV)/bin/pipes run --once configs/demo.yaml

# A small generated weather data set (GHCN-daily-like), then the monthly-max map job over it.
map-demo: $(STAMP)
	$(PY) examples/weather/generate.py out/weather --stations 50 --years 2022-2023
	$(VENV)/bin/pipes map examples/weather/monthly-max.yaml
	@head -n 6 out/monthly-max/result.csv

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check pipes connectors tests bench examples/weather
	$(VENV)/bin/ruff format --check pipes connectors tests bench examples/weather

typecheck: $(STAMP)
	$(VENV)/bin/mypy --strict pipes connectors

check: lint typecheck test

# The benchmarks also need the bench extra (Quix Streams, psutil); BENCH_ARGS="--rounds 2" passes options.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out state .pytest_cache .mypy_cache
