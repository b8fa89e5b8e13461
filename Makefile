# Two commands are the contract: `make run` and `make test`. Both set themselves up from a bare Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint clean browser wrk

# The browser tests drive Debian's chromium through its chromedriver; installed through apt only when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# bench/http.py drives the service with wrk (Debian's package; its smoke test runs in `make test`), installed
# through apt only when missing.
wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk \
		>/dev/null; } || echo "wrk not installed: bench/http.py uses its Python clients"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kam serve --demo --data .kam-data

test: $(STAMP) browser wrk
	@# LibreOffice checks that the workbooks we write open without repair and recalculate the same
	command -v soffice >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends libreoffice-calc-nogui >/dev/null) || echo "LibreOffice not installed: its tests skip"
	$(BIN)/ruff check kamcore server excel_addin tests bench
	$(BIN)/kam rules check rules/
	$(BIN)/kam rules test rules/
	$(BIN)/pytest

bench: $(STAMP) wrk
	$(BIN)/python bench/evaluate.py
	$(BIN)/python bench/http.py --workers 2
	$(BIN)/python bench/store.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/decisions.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/web.py

lint: $(STAMP)
	$(BIN)/ruff check kamcore server excel_addin tests bench

clean:
	rm -rf $(VENV) build *.egg-info
