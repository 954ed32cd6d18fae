# Klick: two commands set everything up on a fresh machine.
#   make run    the launcher on the demo card set with the simulated reader (LOCALE=en: in English)
#   make test   install what is needed, then run every test headless

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Debian packages Kivy and nfcpy load at run time; the PDF renderer the print tests use; the kiosk
# the appliance runs (cage, XWayland, Chromium), with grim to screenshot it and openssl for the
# test pages' certificates (tests/test_kiosk.py); xvfb, the headless X display the browser tests
# show Chromium on (tests/test_browser_real.py, tests/test_launcher_calls.py); and the MQTT broker
# the fleet's tests, benchmarks and soak runs start for themselves.
DEB_RUNTIME := libgl1 libegl1 libmtdev1 libusb-1.0-0
DEB_TEST    := poppler-utils cage xwayland chromium grim openssl xvfb mosquitto

.PHONY: run test lint bench soak deps venv clean

# make run LOCALE=en shows the demo in English.
run: $(STAMP) deps
	$(VENV)/bin/klick launcher --demo $(if $(LOCALE),--locale $(LOCALE))

# Most tests wait on processes, sockets and screens rather than the CPU, so they run three at a time;
# the few that measure wall time or CPU (marked serial) run alone afterwards, on a quiet machine.
test: $(STAMP) deps lint
	$(PY) -m pytest -q -n 3 --dist loadfile -m "not serial"
	$(PY) -m pytest -q -m serial

# The house rules a tool can check: who may import whom (import-linter), style and formatting
# (ruff), types (mypy; pyproject.toml says what it checks: every package).
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: $(STAMP) deps
	$(PY) tests/bench/run_all.py

soak: $(STAMP) deps
	$(PY) tests/soak/run_all.py

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# Installs the Debian packages only when one is missing: as root directly, else through sudo,
# else it stops with one line naming them.
deps:
	@missing=""; \
	for p in $(DEB_RUNTIME) $(DEB_TEST); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	  else echo "Klick needs these Debian packages; install them as root:$$missing"; exit 1; fi; \
	  echo "Installing Debian packages:$$missing"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

# The appliance (as root): everything under /opt/klick, /etc/klick, /var/lib/klick, the systemd
# units and the udev rule, enabled. Running it again changes nothing. Variables:
#   DESTDIR=/image  install into an image or scratch root (nothing started, no apt)
#   SKIP_VENV=1     leave out the venv (the tests do; the soak suite builds it)
#   SKIP_APT=1      do not install cage, xwayland, chromium and the run-time libraries
#   PIP_ARGS=...    extra arguments for the venv's pip install
#   PURGE=1         uninstall-appliance also removes settings, cards, usage log and the klick user
.PHONY: install-appliance uninstall-appliance

install-appliance:
	DESTDIR="$(DESTDIR)" SKIP_VENV="$(SKIP_VENV)" SKIP_APT="$(SKIP_APT)" PIP_ARGS="$(PIP_ARGS)" sh config/appliance/install.sh

uninstall-appliance:
	DESTDIR="$(DESTDIR)" PURGE="$(PURGE)" sh config/appliance/uninstall.sh
