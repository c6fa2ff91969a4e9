# rdns-scorer: `make run` serves on the defaults, `make test` sets up and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the tests run for real: command (or file) -> package. dns-root-data:
# the root's DNSSEC key the Docker stack's unbound.conf names, which unbound-checkconf
# (tests/test_monitoring.py) wants to exist.
TEST_PACKAGES := ss:iproute2 unbound:unbound rspamd:rspamd luacheck:lua-check spamassassin:spamassassin spamc:spamc spamd:spamd prometheus:prometheus systemd-analyze:systemd postfix:postfix /usr/share/dns/root.key:dns-root-data
# What `make bench` runs: unbound, wrk, and valgrind to count instructions with callgrind
# (bench/instructions.py). `make bench BENCH_ARGS=--quick` skips the slow parts.
BENCH_PACKAGES := unbound:unbound wrk:wrk valgrind:valgrind
BENCH_ARGS ?=
PACKAGES := $(TEST_PACKAGES)  # `make bench` passes more on its command line

.PHONY: run test test-other-pythons lint venv test-venv debian-packages bench clean

# A venv of another Python than $(PYTHON), or whose interpreter is gone, is made anew with
# everything installed in it: Debian 12 -> 13 turns python3 from 3.11 into 3.13 (the venv's
# packages are then not found) and removes python3.11 (its scripts then cannot start), and
# one made by a Python older than requires-python could never install the package.
VENV_VERSION := $(shell [ -x $(BIN)/python ] && sed -n 's/^version *= *\([0-9]*\.[0-9]*\).*/\1/p' $(VENV)/pyvenv.cfg 2>/dev/null)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
ifneq ($(VENV_VERSION),$(PYTHON_VERSION))
.PHONY: $(BIN)/python $(VENV)/.run-installed $(VENV)/.test-installed $(VENV)/.bench-installed
endif

# Debian ships venv's ensurepip in python3-venv, which a stock install lacks: install
# it as root, or say what to do. A venv that failed half-way is removed, so the next
# `make` starts over instead of failing on a .venv without pip.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "rdns-scorer needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)" \
	    "(make run PYTHON=python3.11, or newer)" >&2; exit 1; }
	rm -rf $(VENV)
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian package: python3-venv"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends python3-venv; \
	  else \
	    echo "$(PYTHON) cannot create a venv: install python3-venv (sudo apt-get install python3-venv)" >&2; \
	    exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(BIN)/pip install -q --upgrade pip || { rm -rf $(VENV); exit 1; }

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.run-installed

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[bench]'
	touch $@ $(VENV)/.run-installed

venv: $(VENV)/.run-installed
test-venv: $(VENV)/.test-installed

# `make run ARGS="--config scorer.toml"`: serve's options.
run: venv
	$(BIN)/rdns-scorer serve $(ARGS)

# Debian's postfix asks which setup to write: "No configuration" writes none, so no
# system postfix starts (the tests run their own). --no-remove: postfix conflicts with
# every other MTA, and `-y` alone let apt remove the host's exim4 or sendmail for it.
# unbound, spamd and postfix are in /usr/sbin, not on a Debian user's PATH: looked for
# there too. Not root: apt-get would fail, so say what to install instead of trying.
debian-packages:
	@missing=""; for pair in $(PACKAGES); do \
	  case $${pair%%:*} in \
	    /*) [ -e "$${pair%%:*}" ];; \
	    *) PATH="$$PATH:/usr/sbin:/sbin" command -v $${pair%%:*} >/dev/null 2>&1;; \
	  esac || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" != 0 ]; then \
	  echo "missing Debian packages:$$missing: as root," \
	       "apt-get install --no-install-recommends$$missing (or run make as root)" >&2; \
	  exit 1; \
	fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends --no-remove $$missing \
	  || { echo "could not install:$$missing (make removes no installed package for them:" \
	       "postfix replaces another MTA, such as exim4; install it by hand if you want that)" >&2; \
	       exit 1; }; \
	fi

lint: test-venv debian-packages
	$(BIN)/ruff check scorer tests bench
	$(BIN)/ruff format --check scorer tests bench
	$(BIN)/mypy scorer
	$(BIN)/mypy --explicit-package-bases bench tests
	luacheck --no-color -q lua

test: lint
	$(BIN)/pytest -q

# The suite again on the newer Pythons mail hosts run: 3.12 (Ubuntu 24.04) and 3.13
# (Debian 13 "trixie"), each in its own venv (.venv-3.12, ...), with whichever this
# machine has, on PATH or pyenv's (a pyenv shim may run another version: each candidate
# is asked its own). One it lacks is named and left out: `make test` is the gate
# everywhere, this adds what the machine can; .ci/run runs it after `make test`.
OTHER_PYTHONS := 3.12 3.13

test-other-pythons: debian-packages
	@for version in $(OTHER_PYTHONS); do \
	  python=""; \
	  for candidate in $$(command -v python$$version) \
	      "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/$$version.*/bin/python$$version; do \
	    if [ -x "$$candidate" ] && [ "$$("$$candidate" -c \
	        'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$$version" ]; then \
	      python=$$candidate; break; \
	    fi; \
	  done; \
	  if [ -z "$$python" ]; then echo "Python $$version: not on this machine, its run left out"; continue; fi; \
	  echo "Python $$version: $$python"; \
	  $(MAKE) --no-print-directory test-venv PYTHON=$$python VENV=.venv-$$version \
	    && .venv-$$version/bin/pytest -q || exit 1; \
	done

# Throughput and latency (issue 7): unbound + wrk, prints JSON. Not a test; see docs/performance.md.
bench: $(VENV)/.bench-installed
	$(MAKE) --no-print-directory debian-packages PACKAGES="$(BENCH_PACKAGES)"
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# build/: what pip's in-tree build left, which a later `pip install .` would ship again
# (a module deleted from scorer/ since included).
clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
