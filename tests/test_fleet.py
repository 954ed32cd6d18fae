"""The fleet end to end with real parts: Mosquitto with TLS and the shipped ACL, real usage.db files,
real `klick fleet` and `klick fleet collect` processes, SIGKILLs and broker crashes.

The pilot file that arrives over the network must be the one `klick export` + `klick export merge`
make from the same device, row for row.
"""

from __future__ import annotations

import datetime
import json
import os
import queue
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from fleet_broker import (
    EXPORT_KEY,
    Broker,
    device_home,
    have_mosquitto,
    klick_env,
    start_collector,
    start_fleet,
    wait_for,
)
from test_export import ANNA, CARDS, NEWS, make_device_db

from klick.usage import UsageLog, withdraw_consent

pytestmark = [pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed (make test installs it)")]

DATA_TABLES = ("events", "sessions", "answers")
SECRETS = (ANNA, NEWS, "Anna Andersson", "Rapport", "meet.example.se", "familjen-andersson", "https://")
FREE_TEXT = "Ljudet var"  # the free-text answer make_device_db gives


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop(kill=True)


class Spy:
    """Every message published under klick/#, as the collector's user may read them."""

    def __init__(self, broker: Broker) -> None:
        from fleet.mqtt import make_client

        self.messages: queue.Queue = queue.Queue()
        self.client = make_client(broker.access("collector"), f"spy-{os.urandom(3).hex()}")
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("klick/#", qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(10)

    def all(self) -> list[tuple[str, bytes]]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def rows_of(path: Path, table: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = [c for c in (r[1] for r in conn.execute(f"PRAGMA table_info({table})"))]
        return [tuple(r) for r in conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY device, src_id")]
    finally:
        conn.close()


def covered(pilot: Path, device: str) -> int:
    if not pilot.exists():
        return -1
    conn = sqlite3.connect(f"file:{pilot}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT covered FROM fleet_devices WHERE device = ?", (device,)).fetchone()
    except sqlite3.OperationalError:
        return -1
    finally:
        conn.close()
    return row[0] if row else -1


def last_seq(usage_db: Path) -> int:
    conn = sqlite3.connect(f"file:{usage_db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT last FROM row_seq").fetchone()[0]
    finally:
        conn.close()


def usb_pilot(home: Path, out: Path) -> Path:
    """What a tester makes with a USB stick: klick export usage + answers, then merge."""
    env = klick_env(home)
    klick = str(Path(os.sys.executable).parent / "klick")
    for kind in ("usage", "answers"):
        subprocess.run(
            [klick, "export", kind, "--format", "sqlite", "--out", str(home / f"{kind}.sqlite")],
            check=True,
            env=env,
            capture_output=True,
        )
    subprocess.run(
        [klick, "export", "merge", str(home / "usage.sqlite"), str(home / "answers.sqlite"), "--out", str(out)],
        check=True,
        env=env,
        capture_output=True,
    )
    return out


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_pilot_database_over_the_network_is_the_one_klick_export_merge_makes(broker, tmp_path):
    # Both ways with their defaults (no free text): the files must match in every column.
    home = tmp_path / "hbg-07"
    device_home(broker, home, "hbg-07")
    (home / "cards.yaml").write_text(CARDS)
    make_device_db(home / "usage.db", "hbg-07", days=4)
    pilot = tmp_path / "office" / "PILOT.sqlite"
    pilot.parent.mkdir()
    spy = Spy(broker)
    collector = start_collector(broker, pilot, log=tmp_path / "collector.log")
    fleet = start_fleet(home)
    try:
        target = last_seq(home / "usage.db")
        wait_for(lambda: covered(pilot, "hbg-07") >= target, 60, what="the collector to hold every row")
    finally:
        stop(fleet)
        stop(collector)
    usb = usb_pilot(home, tmp_path / "USB.sqlite")
    for table in DATA_TABLES:
        assert rows_of(pilot, table) == rows_of(usb, table), table
        assert rows_of(pilot, table), table
    # The same meta where it matters: format, key, personal or not, devices, contents.
    for key in ("kind", "export_schema", "key_check", "personal", "devices", "contents"):
        assert _meta(pilot)[key] == _meta(usb)[key], key
    report = subprocess.run(
        [str(Path(os.sys.executable).parent / "klick"), "report", str(pilot), "--out", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    # Nothing personal in any message that was published.
    messages = spy.all()
    spy.close()
    assert any(t.endswith("/rows") for t, _ in messages)
    for t, payload in messages:
        for secret in SECRETS:
            assert secret.encode() not in payload, (t, secret)


def _meta(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()


def test_free_text_and_personal_fields_stay_on_the_tablet_by_default(broker, tmp_path):
    home = tmp_path / "hbg-08"
    device_home(broker, home, "hbg-08")  # include_free_text: false, the default
    (home / "cards.yaml").write_text(CARDS)
    make_device_db(home / "usage.db", "hbg-08", days=2)
    pilot = tmp_path / "PILOT.sqlite"
    spy = Spy(broker)
    collector = start_collector(broker, pilot, log=tmp_path / "collector.log")
    fleet = start_fleet(home)
    try:
        target = last_seq(home / "usage.db")
        wait_for(lambda: covered(pilot, "hbg-08") >= target, 60, what="every row")
    finally:
        stop(fleet)
        stop(collector)
    messages = spy.all()
    spy.close()
    assert {t.rsplit("/", 1)[1] for t, _ in messages} >= {"rows", "state"}
    for t, payload in messages:
        for secret in (*SECRETS, FREE_TEXT):
            assert secret.encode() not in payload, (t, secret)
        if t.endswith("/rows"):
            for table, _seq, values in json.loads(payload)["rows"]:
                assert values[0] == "hbg-08"
                if table == "events" and values[3] not in (
                    "reader_status",
                    "prompt_shown",
                    "prompt_answered",
                    "prompt_dismissed",
                ):
                    assert values[-1] is None  # detail
    answers = rows_of(pilot, "answers")
    assert answers and all(r[12] is None for r in answers)  # text


def _publish_as(broker: Broker, user: str, topic: str, payload: bytes) -> object:
    """Publish once as ``user`` (MQTT 5) and return the broker's PUBACK reason code."""
    from fleet.mqtt import make_client

    got: queue.Queue = queue.Queue()
    c = make_client(broker.access(user), f"t-{os.urandom(3).hex()}")
    c.on_publish = lambda cl, u, mid, rc, p: got.put(rc)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1)
        return got.get(timeout=10)
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_tablet_may_publish_only_under_its_own_topics_by_the_shipped_acl(broker, tmp_path):
    broker.add_device("hbg-01")
    broker.add_device("hbg-02")
    spy = Spy(broker)
    assert not _publish_as(broker, "hbg-01", "klick/hbg-01/rows", b"{}").is_failure
    for topic in ("klick/hbg-02/rows", "klick/hbg-02/state", "klick/hbg-01/set/cards", "klick/hbg-01/set/resend", "other/x"):
        rc = _publish_as(broker, "hbg-01", topic, b"{}")
        assert rc.is_failure and rc.getName() == "Not authorized", topic
    time.sleep(0.3)
    assert [t for t, _ in spy.all()] == ["klick/hbg-01/rows"]
    spy.close()


def test_a_client_without_tls_or_with_a_wrong_password_is_refused(broker):
    import socket

    from fleet.mqtt import Access, make_client

    # Plain MQTT on the TLS port: the broker never answers a CONNECT without a TLS handshake.
    with socket.create_connection((broker.host, broker.port), timeout=5) as s:
        s.sendall(bytes.fromhex("101000044d5154540402003c0004746573740000"))
        s.settimeout(3)
        try:
            reply = s.recv(10)
        except (TimeoutError, ConnectionResetError):
            reply = b""
    assert not reply.startswith(b"\x20")  # no CONNACK
    wrong = Access(broker.host, broker.port, broker.ca_file, "office", "not the password")
    got: queue.Queue = queue.Queue()
    c = make_client(wrong, "wrong-pw")
    c.on_connect = lambda cl, u, f, rc, p: got.put(rc)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        rc = got.get(timeout=10)
    finally:
        c.loop_stop()
    assert rc.is_failure and rc.getName() in ("Bad user name or password", "Not authorized")
    unknown = Access(broker.host, broker.port, broker.ca_file, "hbg-99", "guess")
    c = make_client(unknown, "unknown-user")
    c.on_connect = lambda cl, u, f, rc, p: got.put(rc)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        assert got.get(timeout=10).is_failure
    finally:
        c.loop_stop()


def test_the_enrol_lines_let_a_tablet_in(broker, tmp_path, klick):
    result = klick("fleet", "enrol", "hbg-42", "--host", broker.host, "--port", str(broker.port))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    password = lines[lines.index(next(l for l in lines if l.startswith("# 2."))) + 1]
    broker_line = next(l for l in lines if l.startswith("hbg-42:$7$101$"))
    broker.passwd.write_text(broker.passwd.read_text() + broker_line + "\n")
    broker.users["hbg-42"] = password
    broker.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert not _publish_as(broker, "hbg-42", "klick/hbg-42/state", b"{}").is_failure
    bad = klick("fleet", "enrol", "hbg/42", "--host", "x")
    assert bad.returncode == 2 and "cannot be a device name" in bad.stderr
    assert klick("fleet", "enrol", "collector", "--host", "x").returncode == 2


def test_klick_fleet_is_off_without_a_fleet_section(klick_home, klick):
    (klick_home / "klick.yaml").write_text("pilot:\n  device_name: hbg-1\n")
    result = klick("fleet", timeout=20)
    assert result.returncode == 0 and "off" in result.stderr


def test_klick_fleet_says_what_is_missing(broker, tmp_path, klick):
    home = tmp_path / "t"
    device_home(broker, home, "hbg-05")
    (home / "fleet-password").unlink()
    result = klick("fleet", "--config", str(home / "klick.yaml"), timeout=20)
    assert result.returncode == 2 and "password file" in result.stderr and "Traceback" not in result.stderr
    device_home(broker, home, "hbg-05", extra="")
    text = (home / "klick.yaml").read_text().replace('export_key: "' + EXPORT_KEY + '"', 'export_key: ""')
    (home / "klick.yaml").write_text(text)
    result = klick("fleet", "--config", str(home / "klick.yaml"), timeout=20)
    assert result.returncode == 2 and "export_key" in result.stderr


def test_a_withdrawn_device_says_so_once_and_nothing_personal_after(broker, tmp_path):
    home = tmp_path / "hbg-09"
    device_home(broker, home, "hbg-09")
    make_device_db(home / "usage.db", "hbg-09", days=1)
    pilot = tmp_path / "PILOT.sqlite"
    collector = start_collector(broker, pilot, log=tmp_path / "collector.log")
    fleet = start_fleet(home)
    try:
        wait_for(lambda: covered(pilot, "hbg-09") >= last_seq(home / "usage.db"), 60, what="every row")
        assert rows_of(pilot, "sessions")
        spy = Spy(broker)
        # `klick pilot withdraw`: personal rows deleted, the date of withdrawal recorded.
        withdraw_consent(home / "usage.db", today=datetime.date(2026, 3, 5))
        # A launcher still set to enrolled keeps writing card use: none of it may leave.
        log = UsageLog.open(home / "usage.db", device="hbg-09", enrolled=True)
        log.record("card_present", uid=ANNA, action_type="video_call")
        log.record("card_removed", uid=ANNA)
        log.record("reader_status", outcome="lost", detail="unplugged")
        log.close()
        wait_for(lambda: covered(pilot, "hbg-09") >= last_seq(home / "usage.db"), 60, what="the rows after withdrawal")
        wait_for(lambda: not rows_of(pilot, "sessions"), 30, what="the withdrawal at the collector")
        stop(fleet)
        fleet = start_fleet(home)  # a restart must not say it again
        wait_for(lambda: "connected" in (home / "fleet.log").read_text().split("reports to")[-1], 30, what="reconnect")
        time.sleep(1.0)
    finally:
        stop(fleet)
        stop(collector)
    messages = spy.all()
    spy.close()
    withdrawn = [p for t, p in messages if t == "klick/hbg-09/withdrawn"]
    assert len(withdrawn) == 1 and json.loads(withdrawn[0])["at"] == "2026-03-05"
    after = [json.loads(p) for t, p in messages if t == "klick/hbg-09/rows"]
    assert after and all(v[3] == "reader_status" for b in after for table, _s, v in b["rows"] if table == "events")
    assert all(table == "events" for b in after for table, _s, _v in b["rows"])
    assert {r[3] for r in rows_of(pilot, "events")} == {"reader_status"}
    assert rows_of(pilot, "answers") == [] and rows_of(pilot, "sessions") == []
    states = [json.loads(p) for t, p in messages if t == "klick/hbg-09/state" and p]
    withdrawn_states = [s for s in states if s.get("consent") == "withdrawn"]
    assert withdrawn_states and all(s["last_card_at"] is None for s in withdrawn_states)


def test_status_of_three_tablets_one_of_them_offline(broker, tmp_path, klick):
    fleets = {}
    for i, name in enumerate(("hbg-01", "hbg-02", "hbg-03")):
        home = tmp_path / name
        device_home(broker, home, name, state_every_s=2)
        (home / "cards.yaml").write_text(CARDS)
        log = UsageLog.open(home / "usage.db", device=name, enrolled=True)
        log.record("reader_status", outcome="connected", detail="usb")
        log.record("card_present", uid=ANNA, action_type="video_call")
        log.record("card_removed", uid=ANNA)
        if i == 1:
            log.record("reader_status", outcome="lost", detail="USB reader unplugged")
        log.close()
        fleets[name] = start_fleet(home, keepalive=1)
    try:
        for name in fleets:
            wait_for(lambda n=name: "connected" in (tmp_path / n / "fleet.log").read_text(), 30, what=f"{name} online")
        time.sleep(1.0)
        # hbg-03 vanishes (power cut): the broker's last will sets it offline.
        fleets["hbg-03"].send_signal(signal.SIGKILL)
        fleets["hbg-03"].wait()
        args = ["fleet", "status", *broker.office_args("office")]

        def offline_shown():
            r = klick(*args)
            return r if r.returncode == 0 and "hbg-03" in r.stdout and "OFFLINE" in r.stdout else None

        result = wait_for(offline_shown, 30, 0.5, what="hbg-03 offline in the status")
        as_json = klick(*args, "--json")
    finally:
        for p in fleets.values():
            stop(p)
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("hbg-02") and "PROBLEM: reader lost (USB reader unplugged)" in lines[0]
    assert lines[1].startswith("hbg-03") and "OFFLINE since" in lines[1] and "last card" in lines[1]
    assert lines[2].startswith("hbg-01") and "online since" in lines[2] and "PROBLEM" not in lines[2]
    assert "cards sha256:" in lines[2] and "backlog 0" in lines[2]
    data = {d["device"]: d for d in json.loads(as_json.stdout)}
    assert data["hbg-03"]["online"] is False and data["hbg-01"]["online"] is True
    assert data["hbg-02"]["reader"] == "lost" and data["hbg-01"]["last_card_at"]


def test_the_fleet_daemon_never_loads_numpy(broker, tmp_path):
    """sqlite-utils loads numpy (20 MiB) where it is installed; the daemon reads the log without it."""
    import importlib.util

    if importlib.util.find_spec("numpy") is None:
        pytest.skip("numpy is not installed here, so nothing could load it")
    home = tmp_path / "hbg-05"
    device_home(broker, home, "hbg-05")
    log = UsageLog.open(home / "usage.db", device="hbg-05", enrolled=True)
    log.record("card_present", uid=ANNA, action_type="video_call")
    log.record("card_removed", uid=ANNA)
    log.close()
    proc = start_fleet(home)
    try:
        wait_for(lambda: "connected" in (home / "fleet.log").read_text(), 30, what="klick fleet online")
        wait_for(lambda: last_seq(home / "usage.db") > 0, 10, what="rows")
        time.sleep(1.0)  # the backlog is sent
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        stop(proc)
    assert "/numpy" not in maps and "numpy.libs" not in maps
