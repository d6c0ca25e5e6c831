# One venv, built from nothing; every target installs first (fast when already done).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)

.PHONY: install demo test test-quick docs schema bench bench-criteria bench-coverage bench-data bench-memory bench-resnet50 bench-cli bench-driver bench-search bench-finetune bench-transforms clean

install: $(STAMP)

$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch and torchvision first: later requirements are then satisfied by these exact builds.
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e '.[dev,export,docs]'
	# torchattacks' declared deps (torchvision, requests~=2.25) are unused and unresolvable here.
	$(PIP) install -q --no-deps torchattacks==3.5.1
	# The browser tests (tests/test_e2e_search.py) drive Debian's Chromium headless.
	command -v chromium >/dev/null || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: install
	$(VENV)/bin/robustprune run configs/quickstart.yaml

# Two pytest workers (much of the e2e time is waiting on Ray, MLflow and subprocesses), the
# tests of one file on one worker (they share its module fixtures).
test: install
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=20

# The unit tests: no Ray cluster, no MLflow server, no browser, no CLI subprocess. They share
# no search, so each test goes to whichever worker is free (worksteal balances the load).
test-quick: install
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=20 -m "not e2e and not slow"

bench: install
	$(PY) bench/bench_trial.py

# The criteria compared (docs/explanation/criteria.md): a study on the cluster Ray finds (a local one by default),
# its report page written beside this file; `robustprune resume` continues a stopped one.
bench-criteria: install
	$(VENV)/bin/robustprune study configs/study-mnist.yaml
	$(VENV)/bin/robustprune report --experiment study-mnist --out bench/criteria.html

bench-coverage: install
	$(PY) bench/bench_coverage.py --out bench/coverage.md

bench-data: install
	$(PY) bench/bench_data.py

bench-memory: install
	$(PY) bench/bench_memory.py

bench-resnet50: install
	$(PY) bench/bench_resnet50.py

# The documentation site, into site/ (strict: a broken link, page or anchor fails the build).
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# The config schemas kept for editors (tests/test_config_schema.py checks they are current).
schema: install
	for kind in search trial study; do $(VENV)/bin/robustprune schema $$kind > schema/$$kind.schema.json; done

bench-cli: install
	$(PY) bench/bench_cli_startup.py --before $(or $(BEFORE),1b4c91a)

bench-driver: install
	$(PY) bench/bench_driver.py

bench-search: install
	$(PY) bench/bench_search.py --out bench/search.md

bench-finetune: install
	$(PY) bench/bench_finetune_methods.py

bench-transforms: install
	$(PY) bench/bench_transforms.py

clean:
	rm -rf $(VENV) mlflow.db mlruns ray_results robustprune_runs
