"""`make install-appliance` with its venv, twice, into a scratch DESTDIR (the step `make test` skips).

The venv is made from /usr/bin/python3 and Klick is pip-installed into it from this checkout,
not editable; PIP_ARGS=--no-deps keeps the soak from downloading Kivy and friends again (the
dependency install is pip's own job). Checked: the console script exists and points at
/opt/klick/venv (not at the scratch DESTDIR), klick imports from the venv's site-packages, and
the second run changes nothing (a manifest of paths, modes, owners and hashes is identical), and
a third, after a change in fleet/ alone, installs Klick again (the venv's stamp covers every
package). It installs from a copy of the checkout, so that one can be changed.
Needs root (file owners) and a network for pip's build isolation; skipped without root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def manifest(root: Path) -> dict[str, tuple]:
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", st.st_mode, st.st_uid, st.st_gid)
        else:
            out[rel] = ("file", st.st_mode, st.st_uid, st.st_gid, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def run(quick: bool = False) -> list[tuple[str, str, str, bool]]:
    if quick:
        return []
    if os.geteuid() != 0:
        return [("install-appliance with venv", "skipped: needs root", "-", True)]
    with tempfile.TemporaryDirectory(prefix="klick-soak-install-") as tmp:
        dest = Path(tmp) / "root"
        src = Path(tmp) / "checkout"
        shutil.copytree(
            REPO,
            src,
            ignore=shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "build", "tests", "artifacts"),
        )
        installer = str(src / "config/appliance/install.sh")
        env = dict(os.environ, DESTDIR=str(dest), SKIP_APT="1", PIP_ARGS="--no-deps", SKIP_VENV="0")
        started = time.perf_counter()
        first = subprocess.run(["sh", installer], env=env, capture_output=True, text=True)
        took = time.perf_counter() - started
        if first.returncode != 0:
            return [("install-appliance with venv", "FAILED: " + (first.stderr or first.stdout)[-200:], "installs", False)]
        before = manifest(dest)
        second = subprocess.run(["sh", installer], env=env, capture_output=True, text=True)
        after = manifest(dest)  # before anything below runs the venv's python (which writes .pyc)
        (src / "fleet" / "soak_changed.py").write_text('"""Only fleet/ changed: the appliance must install Klick again."""\n')
        third = subprocess.run(["sh", installer], env=env, capture_output=True, text=True)
        reinstalled = third.returncode == 0 and "installed Klick into /opt/klick/venv" in third.stdout
        took_fleet = subprocess.run(
            [str(dest / "opt/klick/venv/bin/python"), "-c", "import fleet.soak_changed"], capture_output=True, cwd=tmp
        )
        venv = dest / "opt/klick/venv"
        script = (venv / "bin/klick").read_text().splitlines()[0] if (venv / "bin/klick").exists() else ""
        # From a neutral folder: run from the checkout, '' on sys.path would find ./klick instead.
        where = subprocess.run(
            [str(venv / "bin/python"), "-c", "import klick; print(klick.__file__)"], capture_output=True, text=True, cwd=tmp
        ).stdout.strip()
        changed = sum(1 for k in set(before) | set(after) if before.get(k) != after.get(k))
        return [
            ("install-appliance with venv: first run", f"{took:.0f} s, {len(before):,} paths", "installs", first.returncode == 0),
            (
                "install-appliance: console script runs from /opt/klick/venv",
                script,
                "#!/opt/klick/venv/bin/python",
                script.startswith("#!/opt/klick/venv/bin/python"),
            ),
            (
                "install-appliance: klick imported from the venv (not editable)",
                where.replace(str(dest), "$DESTDIR"),
                "…/venv/lib/…/site-packages/klick",
                "/opt/klick/venv/lib/" in where and "site-packages/klick" in where,
            ),
            (
                "install-appliance: paths changed by a second run",
                str(changed),
                "0",
                changed == 0 and second.returncode == 0 and "Nothing changed" in second.stdout,
            ),
            (
                "install-appliance: a change in fleet/ alone installs Klick again",
                "reinstalled" if reinstalled and took_fleet.returncode == 0 else "not reinstalled",
                "reinstalled",
                reinstalled and took_fleet.returncode == 0,
            ),
        ]
