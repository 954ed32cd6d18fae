"""A real Mosquitto for the fleet's tests, benchmarks and soak runs: TLS, passwords, the shipped ACL.

``Broker(folder)`` makes a throw-away certificate authority (the ``cryptography`` package), a
server certificate for 127.0.0.1, and a password file, then runs Debian's ``mosquitto`` on a free
port of 127.0.0.1 with the shipped ``config/mosquitto/klick.conf`` and ``klick.acl`` (only the
paths and the port changed). ``stop(kill=True)`` is a crash (SIGKILL); ``stop()`` a clean stop.

``device_home(...)`` writes a tablet's klick.yaml (pilot and fleet sections) for ``klick fleet``.

Used by tests/test_fleet*.py and by tests/soak and tests/bench; part 2 (pushes) builds on it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SHIPPED_CONF = REPO / "config" / "mosquitto" / "klick.conf"
SHIPPED_ACL = REPO / "config" / "mosquitto" / "klick.acl"
EXPORT_KEY = "the pilot secret for tests 2026"
#: Passwords of the office users every test broker has.
OFFICE_USERS = {"collector": "collector-password-1", "office": "office-password-1"}
#: With KLICK_FLEET_SPY=<folder>, every test broker also has a user who may read everything, and
#: records every message published on it there (tests/soak/fleet_privacy.py reads them all).
SPY_DIR = os.environ.get("KLICK_FLEET_SPY", "")
SPY_USER = "klick-test-spy"


def have_mosquitto() -> bool:
    return Path(MOSQUITTO).is_file() and os.access(MOSQUITTO, os.X_OK)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- certificates -------------------------------------------------------------------------------


def make_certificates(
    folder: Path, host: str = "127.0.0.1", valid: tuple[dt.timedelta, dt.timedelta] | None = None
) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed, for ``host`` (and localhost): (ca.crt, server.crt, server.key).

    ``valid`` is when the server's certificate is valid, from and to, as offsets from now (default:
    from 5 minutes ago for 2 days); an expired one or one not valid yet is how a tablet whose clock
    is years off sees the broker."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Klick test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost")]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + (valid[0] if valid else -dt.timedelta(minutes=5)))
        .not_valid_after(now + (valid[1] if valid else dt.timedelta(days=2)))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


# --- the broker ---------------------------------------------------------------------------------


@dataclass
class Broker:
    folder: Path
    port: int = 0
    users: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.ca_file, self.cert_file, self.key_file = make_certificates(self.folder / "certs")
        self.users = {**OFFICE_USERS, **({SPY_USER: "spy-password-1"} if SPY_DIR else {}), **self.users}
        self.acl = SHIPPED_ACL
        if SPY_DIR:
            self.acl = self.folder / "klick.acl"
            self.acl.write_text(SHIPPED_ACL.read_text() + f"\nuser {SPY_USER}\ntopic read #\n")
        self._spy = None
        self.passwd = self.folder / "klick.passwd"
        self.data = self.folder / "data"
        self.data.mkdir(exist_ok=True)
        self.log = self.folder / "mosquitto.log"
        self._write_passwd()
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text(self.config_text())

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def config_text(self) -> str:
        """Debian's main file (pid, persistence, log), then the shipped klick.conf with our paths and port."""
        paths = {
            "listener": f"{self.port} 127.0.0.1",
            "cafile": str(self.ca_file),
            "certfile": str(self.cert_file),
            "keyfile": str(self.key_file),
            "password_file": str(self.passwd),
            "acl_file": str(self.acl),
        }
        lines = [
            f"pid_file {self.folder / 'mosquitto.pid'}",
            "persistence true",
            f"persistence_location {self.data}/",
            f"log_dest file {self.log}",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # the files are ours; do not drop to the mosquitto user
        for line in SHIPPED_CONF.read_text().splitlines():
            key = line.split(" ", 1)[0]
            lines.append(f"{key} {paths[key]}" if key in paths else line)
        return "\n".join(lines) + "\n"

    def _write_passwd(self) -> None:
        from fleet.credentials import password_line

        lines = self.__dict__.setdefault("_lines", {})
        for user, password in self.users.items():
            if lines.get(user, (None,))[0] != password:
                lines[user] = (password, password_line(user, password))
        self.passwd.write_text("".join(lines[u][1] + "\n" for u in self.users))
        self.passwd.chmod(0o600)

    def add_device(self, name: str, password: str | None = None) -> str:
        """A tablet's user (password made up if not given); a running broker reloads its users."""
        return self.add_devices([name], password)[name]

    def add_devices(self, names: list[str], password: str | None = None) -> dict[str, str]:
        made = {name: password or f"pw-{name}-{os.urandom(4).hex()}" for name in names}
        self.users.update(made)
        self._write_passwd()
        if self.running:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)
        return made

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> Broker:
        log = open(self.folder / "mosquitto.stderr", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        # Listening with TLS is all this waits for; the certificate may be one made to be refused.
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self.tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as raw:
                    with context.wrap_socket(raw, server_hostname=self.host):
                        pass
                if SPY_DIR:
                    self._start_spy()
                return self
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s: {self.tail()}")

    def _start_spy(self) -> None:
        """Record every message published on this broker (one JSON line each) under SPY_DIR."""
        import base64
        import json

        from fleet.mqtt import make_client

        if self._spy is not None:
            return  # it reconnects by itself after a restart
        out = open(Path(SPY_DIR) / f"{os.getpid()}-{self.port}-{time.time_ns()}.jsonl", "a", encoding="utf-8")
        import threading

        listening = threading.Event()
        client = make_client(self.access(SPY_USER), f"spy-{os.urandom(4).hex()}")
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
        client.on_subscribe = lambda *a: listening.set()
        client.on_message = lambda c, u, m: (
            out.write(json.dumps({"topic": m.topic, "payload": base64.b64encode(m.payload).decode()}) + "\n"),
            out.flush(),
        )
        client.connect_async(self.host, self.port)
        client.loop_start()
        listening.wait(10)
        self._spy = (client, out)

    def stop(self, kill: bool = False) -> None:
        if not self.running:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, kill: bool = False, down_s: float = 0.0) -> None:
        self.stop(kill=kill)
        time.sleep(down_s)
        self.start()

    def tail(self, n: int = 20) -> str:
        text = ""
        for name in ("mosquitto.stderr", "mosquitto.log"):
            p = self.folder / name
            if p.exists():
                text += "\n".join(p.read_text(errors="replace").splitlines()[-n:]) + "\n"
        return text

    def access(self, user: str):
        from fleet.mqtt import Access

        return Access(self.host, self.port, self.ca_file, user, self.users[user])

    def office_args(self, user: str = "collector") -> list[str]:
        """The options `klick fleet collect|status` take to reach this broker as ``user``."""
        pw = self.folder / f"{user}.password"
        pw.write_text(self.users[user] + "\n")
        return [
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--ca-file",
            str(self.ca_file),
            "--username",
            user,
            "--password-file",
            str(pw),
        ]

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- a tablet's settings ------------------------------------------------------------------------


def device_home(
    broker: Broker,
    folder: Path,
    name: str,
    *,
    enrolled: bool = True,
    state_every_s: int = 300,
    include_free_text: bool = False,
    extra: str = "",
) -> Path:
    """A Klick home for tablet ``name``: klick.yaml with pilot and fleet sections, CA and password files."""
    folder.mkdir(parents=True, exist_ok=True)
    password = broker.users.get(name) or broker.add_device(name)
    (folder / "fleet-password").write_text(password + "\n")
    shutil.copy(broker.ca_file, folder / "fleet-ca.pem")
    (folder / "klick.yaml").write_text(
        textwrap.dedent(f"""\
            pilot:
              device_name: {name}
              enrolled: {"true" if enrolled else "false"}
              export_key: "{EXPORT_KEY}"
              retention_days: 365
            fleet:
              host: {broker.host}
              port: {broker.port}
              ca_file: fleet-ca.pem
              password_file: fleet-password
              state_every_s: {state_every_s}
              include_free_text: {"true" if include_free_text else "false"}
            """)
        + extra
    )
    return folder / "klick.yaml"


def klick_env(home: Path) -> dict[str, str]:
    env = os.environ.copy()
    env["KLICK_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def klick_bin() -> str:
    return str(Path(sys.executable).parent / "klick")


def start_fleet(home: Path, *, keepalive: int = 30, log: Path | None = None) -> subprocess.Popen:
    """`klick fleet` for the tablet whose home is ``home``, as systemd runs it."""
    out = open(log or home / "fleet.log", "ab")
    try:
        return subprocess.Popen(
            [klick_bin(), "fleet", "--config", str(home / "klick.yaml"), "--keepalive", str(keepalive)],
            stdout=out,
            stderr=out,
            env=klick_env(home),
        )
    finally:
        out.close()


def start_collector(
    broker: Broker, out: Path, *, log: Path, client_id: str = "klick-collector", share: str | None = None
) -> subprocess.Popen:
    fh = open(log, "ab")
    try:
        return subprocess.Popen(
            [
                klick_bin(),
                "fleet",
                "collect",
                *broker.office_args("collector"),
                "--out",
                str(out),
                "--client-id",
                client_id,
                *(["--share", share] if share else []),
            ],
            stdout=fh,
            stderr=fh,
            env=klick_env(out.parent),
        )
    finally:
        fh.close()


def wait_for(predicate, timeout: float = 30.0, every: float = 0.05, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
