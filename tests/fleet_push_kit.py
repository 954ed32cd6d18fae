"""What the push tests, the soak run and the README walk-through share: an office with its signing
key and groups file, tablets that take pushes, card bundles with real pictures, and a way to tell
which card set a tablet has (old, new, or a mix: torn).

Builds on tests/fleet_broker.py (a real Mosquitto with TLS and the shipped ACL).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import stat
import subprocess
import textwrap
import zipfile
from pathlib import Path

from fleet_broker import Broker, device_home, klick_bin, klick_env

ALLOWED = "https://meet.example.se"


def png(seed: int, size: int = 64) -> bytes:
    """A real picture (PIL checks every picture in a bundle); noise, so it does not compress away."""
    from PIL import Image

    rnd = random.Random(seed)
    im = Image.frombytes("RGB", (size, size), bytes(rnd.getrandbits(8) for _ in range(size * size * 3)))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def cards_yaml(label: str, n: int, *, extra: str = "", pictures: bool = True) -> str:
    lines = ["version: 1", "cards:"]
    for i in range(n):
        lines += [
            f'  - uid: "04{i:012X}"',
            f"    label: {label} {i + 1}",
            "    colour: blue",
            *([f"    picture: pictures/{label.lower()}-{i}.png"] if pictures else []),
            "    action:",
            "      type: web",
            f"      url: https://www.example.se/{label.lower()}/{i}",
        ]
    return "\n".join(lines) + "\n" + extra


def make_bundle(
    path: Path, label: str, n: int = 3, *, picture_size: int = 64, extra: str = "", members: list | None = None
) -> Path:
    """A bundle as `klick cards pack` makes it: cards.yaml and one picture per card."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cards.yaml", cards_yaml(label, n, extra=extra))
        for i in range(n):
            info = zipfile.ZipInfo(f"pictures/{label.lower()}-{i}.png")
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, png(hash((label, i)) & 0xFFFF, picture_size), compress_type=zipfile.ZIP_STORED)
        for name, data in members or []:
            zf.writestr(name, data)
    return path


def make_office(broker: Broker, folder: Path, groups: dict[str, list[str]]) -> Path:
    """The office's klick.yaml (broker user "office", signing key, groups file); the key is made
    by the real `klick fleet keygen`. Returns the settings file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "office-password").write_text(broker.users["office"] + "\n")
    (folder / "ca.pem").write_bytes(broker.ca_file.read_bytes())
    (folder / "fleet-groups.yaml").write_text(
        "groups:\n" + "".join(f"  {g}:\n" + "".join(f"    - {d}\n" for d in ds) for g, ds in groups.items())
    )
    (folder / "klick.yaml").write_text(
        textwrap.dedent(f"""\
            fleet:
              host: {broker.host}
              port: {broker.port}
              ca_file: ca.pem
              username: office
              password_file: office-password
              office_key_file: fleet-office.key
              groups_file: fleet-groups.yaml
            """)
    )
    return folder / "klick.yaml"


def keygen(office_yaml: Path) -> tuple[subprocess.CompletedProcess, str]:
    """The real `klick fleet keygen`; (its run, the public key it printed)."""
    run = klick(office_yaml.parent, "fleet", "keygen", "--config", str(office_yaml))
    public = next(line.split('"')[1] for line in run.stdout.splitlines() if "signing_key:" in line)
    return run, public


def make_tablet(broker: Broker, folder: Path, name: str, public_key: str, *, state_every_s: int = 300) -> Path:
    """A tablet's home that takes pushes signed by ``public_key`` and calls only to meet.example.se,
    with the usage.db a launcher makes."""
    from klick.usage import UsageLog

    extra = (
        f'  signing_key: "{public_key}"\ncalls:\n  allowed_servers: [{ALLOWED}]\n'
        "paths:\n  questionnaire: questionnaire.yaml\n"  # a pushed questionnaire goes here, beside klick.yaml
    )
    path = device_home(broker, folder, name, state_every_s=state_every_s, extra=extra)
    UsageLog.open(folder / "usage.db", device=name, enrolled=True).close()  # as the launcher leaves it
    return path


def klick(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([klick_bin(), *args], capture_output=True, text=True, env=klick_env(home), timeout=timeout)


def push(office_yaml: Path, kind: str, path: Path, *targets: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return klick(office_yaml.parent, "fleet", "push", kind, str(path), "--config", str(office_yaml), *targets, timeout=timeout)


def applied_state(home: Path) -> dict:
    try:
        return json.loads((home / "fleet-applied.json").read_text())
    except FileNotFoundError:
        return {}


def in_force(home: Path, kind: str = "cards") -> int | None:
    entry = applied_state(home).get(kind)
    return entry["version"] if entry else None


# --- which card set is on a tablet ----------------------------------------------------------------


def set_files_hash(home: Path) -> str:
    """cards.yaml, its backup and every file of every unpacked set, byte for byte."""
    h = hashlib.sha256()
    for name in ("cards.yaml", "cards.yaml.bak"):
        p = home / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.exists() else b"-") + b"\0")
    sets = home / "card-sets"
    if sets.exists():
        for root, dirs, files in os.walk(sets):
            dirs.sort()
            for f in sorted(files):
                p = Path(root) / f
                h.update(str(p.relative_to(home)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def which_set(home: Path, expected: dict[str, Path]) -> str:
    """The name in ``expected`` ({name: bundle}) whose cards and pictures the tablet's cards.yaml
    holds, "none" when there is no card file, or "torn: why" for anything else."""
    from cards.registry import check_registry

    path = home / "cards.yaml"
    if not path.exists():
        return "none"
    registry, problems = check_registry(path)
    if registry is None:
        return f"torn: the card file cannot be read ({problems[:1]})"
    got = []
    for card in registry.cards:
        picture = None
        if card.picture is not None:
            try:
                picture = hashlib.sha256(Path(card.picture).read_bytes()).hexdigest()
            except OSError:
                return f"torn: the picture {card.picture} of {card.label} is missing"
        got.append((card.uid, card.label, picture))
    for name, bundle in expected.items():
        if got == _bundle_cards(bundle):
            return name
    return f"torn: {[g[1] for g in got]}"


def _bundle_cards(bundle: Path) -> list[tuple]:
    import yaml

    with zipfile.ZipFile(bundle) as zf:
        data = yaml.safe_load(zf.read("cards.yaml"))
        return [
            (
                c["uid"],
                c["label"],
                hashlib.sha256(zf.read(c["picture"])).hexdigest() if c.get("picture") else None,
            )
            for c in data["cards"]
        ]
