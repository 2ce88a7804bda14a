# The two commands of the README: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint install clean bench-intake bench-delivery bench-dashboard bench-sync

run: $(STAMP)
	$(PY) manage.py run

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The layer contracts of pyproject.toml (import-linter) and ruff; .ci/run runs this first.
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

install: $(STAMP)

# Intake throughput against a bare one-INSERT view, on SQLite and PostgreSQL (bench/README.md).
bench-intake: $(STAMP)
	$(PY) -m bench.intake

# Leads per second end to end and CRM calls per 1,000 new leads, against a one-call-per-lead
# baseline in the same run (bench/README.md).
bench-delivery: $(STAMP)
	$(PY) -m bench.delivery

# CRM calls of the two-way sync poller's reads for 1,000 / 2,000 changed records and for none,
# against a one-call-per-record baseline in the same run (bench/README.md).
bench-sync: $(STAMP)
	$(PY) -m bench.sync

# The admin dashboard's SQL statements at 10k and 1M leads: the same number (bench/README.md).
bench-dashboard: $(STAMP)
	$(PY) -m bench.dashboard

# Re-install when the dependencies change.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "crmsync needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) var/*.sqlite3* var/test.sqlite3* var/metrics
