# Two commands (see README): `make serve` and `make test`.  Each sets up .venv first.
# Python 3.11 (pyproject.toml): python3.11, else python3 when it is 3.11; PYTHON=... chooses another.
IS_311 := import sys; sys.exit(sys.version_info[:2] != (3, 11))
PYTHON ?= $(shell command -v python3.11 2>/dev/null || { python3 -c '$(IS_311)' 2>/dev/null && command -v python3; })
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

# A venv built with another Python (or left broken) is removed here and built again below: no `make clean`.
ifneq ($(wildcard $(VENV)),)
ifneq ($(shell $(BIN)/python -c '$(IS_311)' >/dev/null 2>&1 && echo ok),ok)
$(info $(VENV) was not built with Python 3.11: rebuilding it)
$(shell rm -rf $(VENV))
endif
endif

.PHONY: install serve test bench bench-http validate clean

$(BIN)/activate:
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required: install python3.11, or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	@echo "Installing dah-cds and its dependencies into $(VENV) (1-2 minutes)..."
	$(BIN)/pip install --disable-pip-version-check --progress-bar off -e '.[test]'
	touch $@

install: $(VENV)/.installed

# gunicorn with threaded workers and a request read timeout (service/serving.py; README "Serving").
# CDS_HOST tells the app its bind address: without CDS_TRUSTED_CLIENTS only a loopback host may serve.
serve: install
	CDS_HOST=$(HOST) CDS_PORT=$(PORT) $(BIN)/dah-cds serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/apply_bench.py

# The service against a bare Flask floor over HTTP (bench/http_bench.py; needs wrk: apt-get install wrk).
# Writes bench/results/http.md; BENCH_ARGS=--quick for a one-second smoke run.
bench-http: install
	$(BIN)/python bench/http_bench.py $(BENCH_ARGS)

validate: install
	$(BIN)/dah-cds validate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
