# hardenkit: `make demo` shows it, `make test` proves it. Both set everything up first
# on a Debian machine as root: Debian packages, .venv, the Docker engine, base images.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(CURDIR)/$(VENV)/bin
PYTHON    ?= python3
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0
# Targets behind an intercepting proxy must trust the control node's CA bundle.
export HARDENKIT_CA_BUNDLE ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
# Official Node.js builds for the tests and the demo: nodejs.org's layout, served on
# loopback from the npm registry's copies (scripts/node-mirror.py). Set it to
# https://nodejs.org/dist/ to use the real thing.
export HARDENKIT_NODE_MIRROR ?= http://127.0.0.1:48021/

# Every Molecule scenario; `make test` runs them all.
SCENARIOS := default rollback broken_server faults cluster hostile_app bare_host apps

.PHONY: help setup system venv docker images mirror lint unit integration molecule molecule-check molecule-up test test-quick demo demo-clean clean bench-diagnose bench-fleet bench-apps bench-rollout bench

help:
	@echo "make demo        harden a local Docker container playing the broken server, show the report"
	@echo "make demo-clean  remove the demo container"
	@echo "make test        lint, unit and integration tests, every Molecule scenario ($(SCENARIOS))"
	@echo "make test-quick  lint, unit and integration tests and the default scenario"
	@echo "make lint | unit | integration | molecule SCENARIOS=default | bench | bench-diagnose | bench-fleet | bench-apps | bench-rollout"

setup: system venv docker images mirror

system:
	@scripts/install-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $@

docker: system
	@scripts/docker-up.sh

images: docker
	@scripts/build-images.sh

mirror: system
	@case "$$HARDENKIT_NODE_MIRROR" in http://127.0.0.1:*) \
	  HARDENKIT_NODE_MIRROR_PORT=$$(echo "$$HARDENKIT_NODE_MIRROR" | sed 's|.*:\([0-9]*\)/*$$|\1|') \
	  scripts/node-mirror.py >/dev/null;; esac

# Every shell script of the project (not the .sh.j2 templates, which Jinja renders first).
SHELL_SCRIPTS := $(wildcard scripts/*.sh molecule/*/files/*.sh) .ci/run

# .pre-commit-config.yaml runs these same commands; keep the two in step.
lint: venv
	yamllint --strict .
	ruff format --check .
	ruff check .
	mypy
	shellcheck $(SHELL_SCRIPTS)
	ansible-lint --profile production
	antsibull-changelog lint

# Tests of one plugin, template or role file each: no ansible-playbook, Nginx or mirror.
unit: venv
	pytest -n 2 tests/unit

# Tests that run ansible-playbook (harden.yml's validation against the local Node.js mirror,
# roles' tasks, the action plugins), a real Nginx or another program on the roles' files, and
# the built collection (tests/packaging). Nginx is Debian's binary, unpacked into .cache/nginx
# (not installed): `nginx -t` on the rendered templates and a live load balancer on loopback;
# promtool likewise, from Debian's prometheus package, into .cache/prometheus.
# Two workers (pytest-xdist): most of their time is ansible-playbook runs of a few seconds.
integration: venv mirror
	HARDENKIT_NGINX="$$(scripts/fetch-debian-binary.sh nginx usr/sbin/nginx -v)" \
	HARDENKIT_PROMTOOL="$$(scripts/fetch-debian-binary.sh prometheus usr/bin/promtool --version)" \
	  pytest -n 2 --dist load tests/integration tests/packaging

# `faults` measures recovery times, so its measurements run alone; the other seven run in
# two lanes (scripts/molecule-lanes.sh: stages of lanes), balanced by their measured minutes
# (docs/testing.md). SCENARIOS=... on the command line runs the named scenarios one after
# the other instead.
MOLECULE_ALONE := faults
MOLECULE_LANES := rollback apps default|cluster bare_host broken_server hostile_app

# Every scenario is in one of the two.
molecule-check:
	@for f in molecule/*/molecule.yml; do s=$$(basename "$$(dirname "$$f")"); \
	  echo '$(MOLECULE_ALONE)|$(MOLECULE_LANES)' | tr ' ' '|' | tr '|' '\n' | grep -qx -- "$$s" \
	  || { echo "molecule/$$s is in neither MOLECULE_ALONE nor MOLECULE_LANES"; exit 1; }; done

molecule: setup molecule-check
ifeq ($(origin SCENARIOS),command line)
	@scripts/molecule-lanes.sh "$(SCENARIOS)"
else
	@scripts/molecule-lanes.sh "$(MOLECULE_ALONE)" "$(MOLECULE_LANES)"
endif

# `make test`: lint, the unit and integration tests and the first half of `faults` (its
# hosts created, prepared and hardened: nothing measured yet) at the same time; then the
# faults themselves alone, then the two lanes. A failure in the first stage stops the rest.
molecule-up: setup molecule-check
	@scripts/molecule-lanes.sh "$(MOLECULE_ALONE):up"

test: setup
	@$(MAKE) --no-print-directory -j 4 --output-sync=target lint unit integration molecule-up
	@HARDENKIT_MOLECULE_APPEND=1 scripts/molecule-lanes.sh "$(MOLECULE_ALONE):rest" "$(MOLECULE_LANES)"

test-quick: setup lint unit integration
	$(MAKE) molecule SCENARIOS=default

# Measurements, never part of `make test`'s pass/fail.
bench-diagnose: venv
	$(BIN)/python bench/diagnose_bench.py --extra-processes 300 --rounds 20

bench-fleet: venv images
	$(BIN)/python bench/fleet_bench.py --hosts 10 --rounds 3

# Issue 19: a rolling deploy of two app servers behind a load balancer, one build for the
# fleet against a build on each host (bench/README.md, "make bench-rollout").
bench-rollout: venv images mirror
	$(BIN)/python bench/rollout_bench.py

# Issue 18: idempotent run and redeploy of the npm, yarn 4 and pnpm 9 test apps, one fresh
# container each (bench/README.md, "make bench-apps").
bench-apps: venv images mirror
	$(BIN)/python bench/apps_bench.py

# Serving benchmark: dev mode vs PM2 vs Nginx -> PM2 in a container `hk-bench`, Ansible's
# own speed, a deploy under load (bench/README.md). BENCH_ARGS="--quick" or "--fresh".
bench: venv images mirror
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/serve_bench.py $(BENCH_ARGS)

demo: setup
	@scripts/demo.sh

demo-clean:
	@scripts/demo.sh --clean

clean: demo-clean
	rm -rf $(VENV) .cache
