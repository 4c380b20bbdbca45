# The two set-up commands of the README: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests and the demo use (real CNI plugins, iproute2 for namespaces).
DEB_PACKAGES := containernetworking-plugins iproute2 busybox kmod procps graphviz
# The local node runtime (issue 5): TCG QEMU, a private libvirtd per pod, passt, a DHCP peer for
# tests; pkg-config + libvirt-dev build libvirt-python. (The tiny guest takes its kernel and its
# static busybox from .debs it downloads itself: busybox-static Conflicts: busybox, so not here.)
DEB_PACKAGES += qemu-system-x86 libvirt-daemon-system libvirt-clients passt dnsmasq-base
# libvirt-python builds from source against the host's libvirt
DEB_PACKAGES += pkg-config libvirt-dev gcc libc6-dev python3-dev
# DHCP conformance (issue 6): ISC dhclient (v4 and -6) as a real client; udhcpc comes with busybox.
DEB_PACKAGES += isc-dhcp-client
# The native passt stack (issue 5, host stack): passt is built from the Debian 13 source package.
DEB_PACKAGES += make patch xz-utils debian-archive-keyring
# Images (issue 10): podman with runc (crun fails on this host's hybrid cgroups), bases by debootstrap.
DEB_PACKAGES += podman runc debootstrap
# Disks (issue 11): xorrisofs writes the cloud-init ISO as virt-launcher does; isoinfo (genisoimage) reads it back in tests.
DEB_PACKAGES += xorriso genisoimage
# The cloud guest (issue 11): qemu-img makes the disk, its overlays and emptyDisks.
DEB_PACKAGES += qemu-utils
PYTEST_ARGS ?=

.PHONY: demo test deps venv stack images bench clean

deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else echo "need root (or sudo) to install:$$missing" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.stamp-install: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

# Bytecode for our own sources (an editable install has none; the site-packages' pip compiled):
# with PYTHONDONTWRITEBYTECODE set, as containers and some CI images do, every process would
# compile them again (~0.15 s of each `netbind up`, ~40 ms of a sidecar's start). Cheap when fresh.
venv: $(VENV)/.stamp-install
	@$(PY) -m compileall -q -j 0 src

# The native passt stack (libvirt 11.3 + QEMU 10.0 from bookworm-backports, extracted; passt built
# from Debian 13's source), private under /var/cache/netbind/stack: ~20 s once, then cached. Nothing
# of the system changes. Without it (no root, mirror refused) `up` substitutes recipe R6a; in CI the
# native tests then fail, so a failure here fails `make test` there.
stack: deps venv
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else echo "stack: needs root; skipped (up will use recipe R6a)"; exit 0; fi; \
	$$SUDO $(PY) -m netbind.node.stack ensure || { [ "$$CI" != true ] && echo "stack: not provisioned; up will use recipe R6a" >&2; }

# netbind's images (deploy/: sidecars, CNI installer), built offline with podman on bases made from
# Debian packages (debootstrap, ~75 s once; cached under /var/cache/netbind), each rebuilt only when
# its inputs change. Needs root; without it `up` runs the sidecars as host processes.
IMAGES ?= passt bridge cni
images: deps venv
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else echo "images: needs root; skipped (up will run sidecars as processes)"; exit 0; fi; \
	$$SUDO $(VENV)/bin/netbind image build $(IMAGES)

# The live demo needs root (namespaces, libvirtd, QEMU); the tiny guest is built on first use
# from Debian packages (apt-get download), then cached under /var/cache/netbind. Its passt sidecar
# runs as a container of the image built from deploy/passt (as a host process if that cannot be).
demo: IMAGES = passt
demo: deps venv stack images
	$(VENV)/bin/netbind explain -f examples/passt/
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	$$SUDO $(PY) -c 'from netbind.node.guest import ensure_guest; g = ensure_guest(); print("tiny guest:", g.directory, "(built)" if g.built else "(cached)")' && \
	$$SUDO $(PY) -m netbind.node.demo examples/passt/

test: deps venv stack images
	@$(VENV)/bin/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no tests" >&2; exit 1; fi; exit $$rc

bench: venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
