# Two commands (see README): `make serve` and `make test`.  Each sets up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install serve test bench bench-http validate clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
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
