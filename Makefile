# badsum - the two commands of the README, and the pieces they are made of.
#   make reproduce   install everything, put `badsum` on PATH, then run reproduce.yml on the embedded lab
#   make test        install everything, then lint + unit + integration + VM tests
# Both are safe to run twice.

SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

APT_PACKAGES := python3 python3-venv make iproute2 iputils-ping ethtool tcpdump conntrack iptables \
	openssh-server openssh-client netcat-openbsd busybox-static clang llvm libbpf-dev bpftool \
	gcc-multilib util-linux procps docker.io containernetworking-plugins chromium sudo systemd strace

.PHONY: reproduce test deps apt venv web cli docs lint unit fault-catalogue integration test-faults verify molecule lab-up lab-down lab-status bench clean

reproduce: deps cli
	$(BIN)/ansible-playbook reproduce.yml $(ARGS)

# The VM tests last: they build the lab kernels first when the machine has none
# cached (13-19 min once on 2 cores, docs/guide/real-kernels.md; a no-op afterwards).
test: deps lint unit fault-catalogue integration test-vm

deps: apt venv web

# The workshop's browser seat: xterm.js from the npm registry, as package-lock.json pins it.
# Node.js and npm from Debian when the machine has none.
web: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || $(MAKE) --no-print-directory apt APT_PACKAGES="nodejs npm"
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Installs only what is missing, so a second run costs a few dpkg queries.
# policy-rc.d keeps apt from starting the packages' system services (sshd...):
# the lab starts its own daemons, inside its own namespaces.
apt:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
		rc=$$?; [ -n "$$guard" ] && rm -f /usr/sbin/policy-rc.d; \
		if echo "$$missing" | grep -qw docker.io && [ -d /run/systemd/system ]; then \
			echo "disabling the system dockerd that docker.io just installed (172.17.0.0/16): badsum runs its own"; \
			systemctl disable --now docker.service docker.socket || true; \
		fi; \
		exit $$rc; \
	fi

# `badsum` on every root shell's PATH, as a Debian admin expects of a command:
# /usr/local/bin/badsum, a symlink to this checkout's virtualenv (whose Python
# finds the checkout and its ansible-playbook itself). Re-pointed when it is
# another checkout's symlink; a file that is not a symlink is someone else's:
# refused before anything changes. Nothing else of the venv goes on PATH (the
# system may have an ansible of its own).
CLI_LINK := /usr/local/bin/badsum
cli: venv
	@if [ -e $(CLI_LINK) ] && [ ! -L $(CLI_LINK) ]; then \
		echo "$(CLI_LINK) exists and is not a symlink: not badsum's to replace; remove it, or use $(CURDIR)/$(BIN)/badsum" >&2; exit 64; fi
	@if [ "$$(readlink $(CLI_LINK))" != "$(CURDIR)/$(BIN)/badsum" ]; then \
		ln -sfn $(CURDIR)/$(BIN)/badsum $(CLI_LINK) && echo "$(CLI_LINK) -> $(CURDIR)/$(BIN)/badsum"; fi

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when requirements.txt or the package's metadata changed.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e .
	touch $@

venv: $(VENV)/.installed

# The host kit's fleet path runs on RHEL/CentOS 7-era hosts (Python 3.6): its
# files are the ones pyproject.toml gives ruff an older target for.
FLEET_FLOOR = $(shell $(BIN)/python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['tool']['ruff']['per-file-target-version'])")

# The documentation site, readable offline: site/index.html (mkdocs.yml says how; the
# reference pages are written from the code as the site is built: badsum/docs.py).
docs: venv
	$(BIN)/mkdocs build --strict --quiet

lint: venv docs
	$(BIN)/vermin -q --no-tips --violations --eval-annotations --target=3.6- $(FLEET_FLOOR)
	$(BIN)/ruff check tools collections tests bench exercises
	$(BIN)/ruff format --check tools collections tests bench exercises
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint --profile production -q
	$(BIN)/lint-imports --no-cache

unit: venv
	$(BIN)/python -m pytest -q tests/unit

integration: venv
	$(BIN)/python -m pytest -q tests/integration

# The fault catalogue (tests/faults): what stays on a production host, under every
# fault a host can throw at it. Root; scratch network namespaces, removed after each case.
fault-catalogue: venv
	$(BIN)/python -m pytest -q tests/faults

# reproduce.yml and badsum commands killed at random points (SIGKILL, SIGTERM,
# SIGINT), then `badsum lab down`: nothing may be left. make test runs 5.
test-faults: venv
	BADSUM_FAULT_KILLS=$${BADSUM_FAULT_KILLS:-20} $(BIN)/python -m pytest -q tests/integration/test_faults.py

# The testinfra suites again, on a run (RUN=id; default the latest) and the lab's hosts.
verify: venv
	$(BIN)/ansible-playbook playbooks/verify.yml $(if $(RUN),-e badsum_experiment_run_id=$(RUN))

# The topology scenario for every topology of the catalogue, against the embedded lab (up and prepared first),
# each from a fresh molecule state: a stale one makes molecule skip steps.
molecule: venv lab-up
	$(BIN)/ansible-playbook playbooks/prepare.yml
	for t in $$($(BIN)/python -m badsum.topologies); do \
		state=$$(mktemp -d); \
		BADSUM_MOLECULE_INVENTORY=$(CURDIR)/inventories/local BADSUM_MOLECULE_TOPOLOGY=$$t \
			MOLECULE_EPHEMERAL_DIRECTORY=$$state $(BIN)/molecule test -s topology; \
		rc=$$?; rm -rf $$state; [ $$rc = 0 ] || exit $$rc; \
	done

lab-up: venv
	$(BIN)/badsum lab up

lab-down: venv
	$(BIN)/badsum lab down

lab-status: venv
	$(BIN)/badsum lab status

bench: venv
	$(BIN)/python bench/reproduce.py
	$(BIN)/python bench/matrix_repeat.py

# Deletes every run's results (results/, fleet runs included) and the built docs site.
clean: lab-down
	rm -rf results site

# VM labs (tools/badsum/vm): the unfixed and fixed lab kernels from Debian's
# linux-source-6.1, and the guests' root filesystem, cached in
# /var/cache/badsum. 13-19 min the first time on 2 cores (at nice 19;
# docs/guide/real-kernels.md), a no-op when nothing in kernel/ or the package list changed.
VM_APT_PACKAGES := linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev dwarves xz-utils patch \
	qemu-system-x86 mmdebstrap e2fsprogs openssh-client

.PHONY: kernels test-vm reproduce-real

kernels: venv
	$(MAKE) --no-print-directory apt APT_PACKAGES="$(VM_APT_PACKAGES)"
	$(BIN)/badsum kernel build

# Both incidents' table on real kernels (two VM labs; the 2016 rows and 2020's vxlan-nat),
# compared cell by cell with the emulated table measured just before on the embedded lab,
# for the same rows: every topology of the catalogue, as reproduce-real runs by default.
reproduce-real: deps kernels
	$(BIN)/ansible-playbook reproduce.yml \
		-e '{badsum_experiment_topologies: [$(shell $(BIN)/python -m badsum.topologies | paste -sd, -)]}' $(ARGS)
	$(BIN)/badsum reproduce-real --compare latest

# Both VM labs (unfixed and fixed kernel) booted, with real traffic through them
# (both backends on the unfixed one). Part of `make test`.
test-vm: kernels
	BADSUM_TEST_VM=1 $(BIN)/python -m pytest -q tests/unit/test_vm_*.py tests/integration/test_vm.py tests/integration/test_vm_systemd.py
