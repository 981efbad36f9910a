# Two entry points (README): `make run` (the dashboard on the demo data) and `make test` (the whole suite).
# Both create .venv when missing, install requirements and the Debian packages the project needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := chromium fonts-liberation
PORT ?= 8501
# Loopback by default; `make run ADDRESS=0.0.0.0` serves to the network (docs/serving.md).
ADDRESS ?= 127.0.0.1

.PHONY: run test docs analyze bench system-deps clean-cache

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

run: $(STAMP) system-deps
	$(BIN)/streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT)

test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest
	$(MAKE) docs

# The documentation site (docs/, mkdocs.yml) into site/, warnings as errors; the tutorial runs on the demo.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

analyze: $(STAMP) system-deps
	$(BIN)/cxrfail analyze

# Each benchmark's output is kept in bench/results/NAME.txt (docs/performance.md quotes its result lines:
# scripts/readme_numbers.py).
bench: $(STAMP)
	mkdir -p bench/results
	for b in bench/*_bench.py; do \
	  out=bench/results/$$(basename $$b .py).txt; \
	  echo "# recorded $$(date -u +%Y-%m-%d), $$(nproc) cores, load $$(cut -d' ' -f1 /proc/loadavg)" > $$out.new; \
	  $(BIN)/python $$b >> $$out.new || { cat $$out.new; rm -f $$out.new; exit 1; }; \
	  mv $$out.new $$out; cat $$out; \
	done

clean-cache:
	rm -rf $${CXRFAIL_CACHE_DIR:-$$HOME/.cache/cxrfail}
