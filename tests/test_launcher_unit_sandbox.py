"""The launcher unit's rules against the real programs, without systemd: Chromium's own sandbox
starts under the unit's SystemCallFilter, RestrictNamespaces, RestrictAddressFamilies,
ProtectProc, an empty capability bounding set and no_new_privs, and loads a page over the
network; the launcher itself draws its home screen under the same syscall rules.

The rules are read from config/systemd/klick-launcher.service and expanded with systemd's own
`systemd-analyze syscall-filter`, then enforced by tests/seccomp_run.py (libseccomp). Chromium
refuses to run as root, so it runs as nobody, which needs root here to arrange; elsewhere these
tests skip. A control run without chroot shows the check is real: Chromium's sandbox fails.
"""

from __future__ import annotations

import ctypes.util
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "config" / "systemd" / "klick-launcher.service"
SECCOMP_RUN = REPO / "tests" / "seccomp_run.py"
ANALYZE = shutil.which("systemd-analyze")
NOBODY = 65534


def service_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@functools.cache
def syscall_group(name: str) -> frozenset[str]:
    out = subprocess.run([ANALYZE, "syscall-filter", name], capture_output=True, text=True, check=True).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        line = line.strip()
        if line.startswith("@"):
            calls |= syscall_group(line)
        elif line and not line.startswith("#"):
            calls.add(line)
    return frozenset(calls)


def expand(item: str) -> frozenset[str]:
    return syscall_group(item) if item.startswith("@") else frozenset({item})


def unit_spec(drop: tuple[str, ...] = ()) -> dict:
    """The unit's rules as tests/seccomp_run.py takes them (systemd's order: an allow list, then
    additions and ~removals line by line)."""
    s = service_settings()
    allowed: set[str] = set()
    for line in s["SystemCallFilter"]:
        for item in line.split():
            if item.startswith("~"):
                allowed -= expand(item[1:])
            else:
                allowed |= expand(item)
    allowed -= set(drop)
    families = [int(getattr(socket, name)) for name in s["RestrictAddressFamilies"][0].split()]
    return {
        "allow": sorted(allowed),
        "errno": s["SystemCallErrorNumber"][0],
        "namespaces": s["RestrictNamespaces"][0].split(),
        "families": families,
    }


def _needs(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing or ANALYZE is None or ctypes.util.find_library("seccomp") is None:
        pytest.skip(f"needs {', '.join(missing) or 'systemd-analyze and libseccomp'}")


@pytest.fixture(scope="module")
def page():
    """A web page on 127.0.0.1, as a call or web card would open one (over AF_INET)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            body = b"<p>klick-page-ok</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def chromium_under(spec: dict, url: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Chromium as nobody with no capabilities, ProtectProc=invisible's /proc, and the rules."""
    if os.geteuid() != 0:
        pytest.skip("running Chromium as another user needs root here")
    _needs("chromium", "setpriv", "unshare")
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip("no system python3 for the filter helper")
    # pytest's own temporary folders are private to root: this one nobody can reach.
    shared = Path(tempfile.mkdtemp(prefix="klick-sandbox-"))
    shared.chmod(0o755)
    home = shared / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    spec_file = shared / "spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    spec_file.chmod(0o644)
    mount_proc = 'mount -t proc -o hidepid=invisible proc /proc && exec "$@"'
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", mount_proc, "sh", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("cannot mount a private /proc here")
    try:
        return subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", mount_proc, "sh"]
            + ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--bounding-set=-all", "--no-new-privs"]
            + ["env", f"HOME={home}", "DBUS_SESSION_BUS_ADDRESS=disabled:", system_python, str(SECCOMP_RUN), str(spec_file), "--"]
            + [
                "chromium",
                "--headless=new",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={home}/profile",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_chromium_and_its_own_sandbox_run_under_the_launcher_units_rules(page, tmp_path):
    result = chromium_under(unit_spec(), page, tmp_path)
    assert "klick-page-ok" in result.stdout, result.stderr[-3000:]
    assert "No usable sandbox" not in result.stderr and "Check failed" not in result.stderr


def test_the_check_is_real_without_chroot_chromiums_sandbox_fails(page, tmp_path):
    result = chromium_under(unit_spec(drop=("chroot",)), page, tmp_path)
    assert "klick-page-ok" not in result.stdout
    assert "chroot" in result.stderr


@pytest.mark.ui
def test_the_launcher_draws_its_home_screen_under_the_units_syscall_rules(tmp_path):
    _needs()
    home = tmp_path / "home"
    home.mkdir()
    (home / "klick.yaml").write_text(f"reader:\n  driver: sim\npaths:\n  socket: {home / 'b.sock'}\n", encoding="utf-8")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(unit_spec()), encoding="utf-8")
    shot = tmp_path / "home.png"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(KLICK_HOME=str(home), KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_HOME=str(home / "kivy"))
    klick = Path(sys.executable).with_name("klick")
    result = subprocess.run(
        [sys.executable, str(SECCOMP_RUN), str(spec), "--", str(klick), "launcher", "--offscreen", "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert shot.stat().st_size > 2000
