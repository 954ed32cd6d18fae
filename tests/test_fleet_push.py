"""Pushes end to end with real parts: Mosquitto with TLS and the shipped ACL and conf, the real
`klick fleet keygen`, `klick fleet push` and `klick fleet status`, real `klick fleet` daemons on
real tablet homes, real bundles with real pictures, and hostile messages published as the office.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_broker import Broker, have_mosquitto, start_fleet, wait_for  # noqa: E402
from fleet_push_kit import (  # noqa: E402
    applied_state,
    in_force,
    keygen,
    klick,
    make_bundle,
    make_office,
    make_tablet,
    push,
    set_files_hash,
    which_set,
)

from fleet import envelope  # noqa: E402
from fleet.signing import load_private_key, new_key_pair  # noqa: E402

pytestmark = [pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed (make test installs it)")]


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop(kill=True)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connected(home: Path, times: int = 1) -> bool:
    log = home / "fleet.log"
    return log.exists() and log.read_text().count("klick fleet: connected") >= times


def publish_as(broker: Broker, user: str, topic: str, payload: bytes, timeout: float = 60) -> str:
    """Publish once, retained, as ``user``: the broker's answer ("Success", "Not authorized", or
    "disconnected" when it closed the connection instead)."""
    from fleet.mqtt import make_client

    got: queue.Queue = queue.Queue()
    c = make_client(broker.access(user), f"t-{os.urandom(3).hex()}")
    c.on_publish = lambda cl, u, mid, rc, p: got.put(rc.getName())
    c.on_disconnect = lambda cl, u, f, rc, p: got.put("disconnected")
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        c.publish(topic, payload, qos=1, retain=True)
        return got.get(timeout=timeout)
    finally:
        c.disconnect()
        c.loop_stop()


def office_status(broker: Broker) -> dict[str, dict]:
    from fleet.status import read_retained, summarise

    return {s.device: s.as_dict() for s in summarise(read_retained(broker.access("office"), client_id="t-status"), time.time())}


@pytest.fixture
def fleet3(broker, tmp_path):
    """An office with its key and the group "norr" of three tablets."""
    office = make_office(broker, tmp_path / "office", {"norr": ["hbg-01", "hbg-02", "hbg-03"]})
    run, public = keygen(office)
    assert run.returncode == 0, run.stderr
    homes = {name: tmp_path / name for name in ("hbg-01", "hbg-02", "hbg-03")}
    for name, home in homes.items():
        make_tablet(broker, home, name, public)
    return office, public, homes


def test_a_group_push_reaches_every_tablet_and_one_that_was_off_takes_it_when_it_comes_back(broker, fleet3, tmp_path):
    office, _public, homes = fleet3
    procs = {name: start_fleet(home) for name, home in homes.items()}
    try:
        for home in homes.values():
            wait_for(lambda h=home: connected(h), 30, what="the tablets to connect")
        stop(procs.pop("hbg-03"))  # switched off: it says offline and goes
        bundle = make_bundle(tmp_path / "norr.klick", "Norr", 3)
        result = push(office, "cards", bundle, "--group", "norr", "--wait", "--timeout", "30")
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        version = int(lines[0].split(" v")[1].split()[0])
        assert lines[0].startswith("hbg-01  applied   card set v") and lines[1].startswith("hbg-02  applied   card set v")
        assert lines[2].startswith(f"hbg-03  pending   card set v{version}: the tablet is off")
        for name in ("hbg-01", "hbg-02"):
            assert which_set(homes[name], {"norr": bundle}) == "norr" and in_force(homes[name]) == version
        assert which_set(homes["hbg-03"], {"norr": bundle}) == "none"
        procs["hbg-03"] = start_fleet(homes["hbg-03"])  # back on: the broker kept the push for it
        wait_for(lambda: in_force(homes["hbg-03"]) == version, 30, what="hbg-03 to apply the kept push")
        assert which_set(homes["hbg-03"], {"norr": bundle}) == "norr"

        def all_acknowledged():
            r = klick(office.parent, "fleet", "status", "--config", str(office), "--json")
            data = {d["device"]: d for d in json.loads(r.stdout or "[]")}
            return data if len(data) == 3 and all(d["cards_pushed"] == version for d in data.values()) else None

        data = wait_for(all_acknowledged, 30, 0.5, what="all three versions in the status")
        text = klick(office.parent, "fleet", "status", "--config", str(office))
        (tmp_path / "status.txt").write_text(text.stdout)
    finally:
        for p in procs.values():
            stop(p)
    assert all(d["last_refusal"] is None and d["cards_version"].startswith("sha256:") for d in data.values())
    assert text.stdout.count(f"pushed: cards v{version}, questions -") == 3, text.stdout


def test_hostile_pushes_are_refused_in_plain_words_and_change_nothing(broker, fleet3, tmp_path):
    office, _public, homes = fleet3
    home = homes["hbg-01"]
    proc = start_fleet(home)
    key = load_private_key(office.parent / "fleet-office.key")
    topic = "klick/hbg-01/set/cards"
    try:
        wait_for(lambda: connected(home), 30, what="hbg-01 to connect")
        old = make_bundle(tmp_path / "old.klick", "Old", 2)
        good = make_bundle(tmp_path / "good.klick", "Good", 3)
        for bundle in (old, good):
            result = push(office, "cards", bundle, "--device", "hbg-01", "--wait", "--timeout", "30")
            assert result.returncode == 0 and " applied " in result.stdout, result.stdout + result.stderr
        current = in_force(home)
        before = set_files_hash(home)
        assert which_set(home, {"good": good}) == "good"

        def sealed(body: bytes, version: int | None = None, signer=key) -> bytes:
            return envelope.seal(
                signer, "cards", "hbg-01", version or current + 1, body, name="hostile.klick", at="2026-03-05T12:00:00.000Z"
            )

        def unsigned(body: bytes) -> bytes:
            header, rest = sealed(body).split(b"\n", 1)
            fields = json.loads(header)
            del fields["sig"]
            return json.dumps(fields).encode() + b"\n" + rest

        def bundle_with(name: str, **kw) -> bytes:
            return make_bundle(tmp_path / f"{name}.klick", "Evil", 1, **kw).read_bytes()

        old_body = old.read_bytes()
        cases = [
            ("unsigned", unsigned(good.read_bytes()), "it is not signed"),
            ("another key", sealed(good.read_bytes(), signer=new_key_pair()), "not signed by the municipality's key"),
            ("replayed older version", sealed(old_body, current - 1), f"older than version {current} in force"),
            ("a ../ path", sealed(bundle_with("dotdot", members=[("../evil.txt", b"owned")])), "points outside the bundle"),
            (
                "a command card",
                sealed(
                    bundle_with(
                        "command", extra='  - uid: "04CC"\n    label: Sh\n    action: {type: command, argv: [sh, -c, id]}\n'
                    )
                ),
                "command cards are taken only when the installer allows them",
            ),
            (
                "a call to a server not allowed",
                sealed(
                    bundle_with(
                        "call",
                        extra='  - uid: "04DD"\n    label: Kalle\n    action: {type: video_call, provider: jitsi, '
                        "server: https://meet.evil.example, room: kalle}\n",
                    )
                ),
                "calls https://meet.evil.example, which is not one of the call servers in calls.allowed_servers",
            ),
            (
                "too large for the tablet",
                sealed(b"PK" + os.urandom(envelope.MAX_PUSH - 100)),  # passes the broker, not the tablet
                "bytes; a push may be at most 16,777,216 bytes (16.0 MB)",
            ),
            (
                "a type error in cards.yaml",
                sealed(
                    bundle_with(
                        "typed", extra='  - uid: "04EE"\n    label: [a, b]\n    action: {type: web, url: "https://a.se"}\n'
                    )
                ),
                "cards.yaml in hostile.klick:11: label must be text, not a list",
            ),
        ]
        seen_refusals = []
        for name, payload, words in cases:
            last = applied_state(home).get("last")
            assert publish_as(broker, "office", topic, payload) == "Success", name
            wait_for(lambda l=last: applied_state(home).get("last") != l, 30, what=f"the refusal of {name}")
            refusal = applied_state(home)["refused"]["cards"]
            assert any(words in p for p in refusal["problems"]), (name, refusal)
            assert set_files_hash(home) == before, name  # byte for byte: cards.yaml, .bak, every picture
            assert proc.poll() is None, name
            status = wait_for(
                lambda w=words: (s := office_status(broker).get("hbg-01")) and s["last_refusal"] and w in s["last_refusal"] and s,
                20,
                0.3,
                what=f"the refusal of {name} in the status",
            )
            assert status["cards_pushed"] == current and any("the pushed card set" in p for p in status["problems"])
            seen_refusals.append(name)
        assert which_set(home, {"good": good}) == "good"
        assert not list(home.glob(".fleet-push-*")) and not list((home / "card-sets").glob(".incoming-*"))

        # A restart: the refused push is still retained and comes again; it is not refused again.
        log_refusals = (home / "fleet.log").read_text().count("refused a pushed cards")
        assert log_refusals == len(cases)
        state_before = applied_state(home)
        stop(proc)
        proc = start_fleet(home)
        wait_for(lambda: connected(home, 2), 30, what="the restart")
        time.sleep(1.5)
        assert (home / "fleet.log").read_text().count("refused a pushed cards") == log_refusals
        assert applied_state(home) == state_before

        # 200 MB: the broker closes the sender's connection; the tablet never hears of it.
        assert publish_as(broker, "office", topic, b"x" * (200 * 1024 * 1024), timeout=120) in (
            "disconnected",
            "Packet too large",
        )
        time.sleep(1.0)
        assert broker.running and proc.poll() is None
        assert applied_state(home) == state_before and set_files_hash(home) == before
        # Neither fell over: the next good push is taken.
        result = push(office, "cards", old, "--device", "hbg-01", "--wait", "--timeout", "30")
        assert result.returncode == 0 and " applied " in result.stdout, result.stdout + result.stderr
        assert which_set(home, {"old": old}) == "old"
        text = klick(office.parent, "fleet", "status", "--config", str(office)).stdout
    finally:
        stop(proc)
    assert "PROBLEM" not in text.split("hbg-01")[1].splitlines()[0]  # the refusal is history once a newer set is in force
    assert "Traceback" not in (home / "fleet.log").read_text()


def test_the_office_refuses_what_it_must_not_send(broker, fleet3, tmp_path):
    office, public, _homes = fleet3
    again = klick(office.parent, "fleet", "keygen", "--config", str(office))
    assert again.returncode == 2 and "exists already" in again.stderr
    shown = klick(office.parent, "fleet", "keygen", "--config", str(office), "--public")
    assert shown.returncode == 0 and f'signing_key: "{public}"' in shown.stdout
    assert oct((office.parent / "fleet-office.key").stat().st_mode & 0o777) == "0o600"
    huge = tmp_path / "huge.klick"
    with open(huge, "wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # sparse: 200 MB to stat, nothing on the disk
    result = push(office, "cards", huge, "--device", "hbg-01")
    assert result.returncode == 1 and "Not sent: the push is 200.0 MB; a push may be at most 16.0 MB" in result.stderr
    result = push(office, "cards", make_bundle(tmp_path / "ok.klick", "Ok", 1), "--group", "söder")
    assert result.returncode == 2 and "There is no group 'söder'" in result.stderr and "groups there: norr" in result.stderr
    typed = make_bundle(tmp_path / "typed.klick", "Typed", 1, extra='  - uid: "04EE"\n    label: [a, b]\n')
    result = push(office, "cards", typed, "--device", "hbg-01")
    assert result.returncode == 1 and "cards.yaml in typed.klick:" in result.stderr and "label must be text" in result.stderr
    # The collector's broker user may not write a tablet's set/... topics (the shipped ACL): said, not hidden.
    ok = make_bundle(tmp_path / "ok0.klick", "Ok", 1)
    result = push(office, "cards", ok, "--device", "hbg-01", *broker.office_args("collector"))
    assert result.returncode == 1 and result.stdout.startswith(
        "hbg-01  NOT SENT  card set: the broker refused it (Not authorized)"
    )
    (office.parent / "fleet-office.key").chmod(0o644)
    result = push(office, "cards", make_bundle(tmp_path / "ok2.klick", "Ok", 1), "--device", "hbg-01")
    assert result.returncode == 2 and "chmod 600" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_questionnaire_push_is_checked_and_swapped_in(broker, fleet3, tmp_path):
    office, _public, homes = fleet3
    home = homes["hbg-02"]
    proc = start_fleet(home)
    try:
        wait_for(lambda: connected(home), 30, what="hbg-02 to connect")
        source = Path(__file__).resolve().parent.parent / "config" / "questionnaire.yaml"
        result = push(office, "questionnaire", source, "--device", "hbg-02", "--wait", "--timeout", "30")
        assert result.returncode == 0 and "applied   questionnaire v" in result.stdout, result.stdout + result.stderr
        assert (home / "questionnaire.yaml").read_bytes() == source.read_bytes()
        broken = tmp_path / "questionnaire.yaml"
        broken.write_text(source.read_text().replace("version: 1", "version: one", 1))
        result = push(office, "questionnaire", broken, "--device", "hbg-02")
        assert result.returncode == 1 and "questionnaire.yaml:" in result.stderr and "nothing was sent" in result.stderr
    finally:
        stop(proc)


def test_the_carer_windows_push_sends_the_card_file_it_edits(broker, fleet3, tmp_path, monkeypatch):
    from fleet.push import carer_push
    from klick.config import load_config

    office, _public, homes = fleet3
    procs = {name: start_fleet(homes[name]) for name in ("hbg-01", "hbg-02")}
    try:
        for name in procs:
            wait_for(lambda n=name: connected(homes[n]), 30, what=f"{name} to connect")
        # The carer edits a card file with a picture, on the office computer.
        folder = tmp_path / "anna"
        (folder / "pictures").mkdir(parents=True)
        with zipfile.ZipFile(make_bundle(tmp_path / "src.klick", "Anna", 1)) as zf:
            (folder / "pictures" / "anna-0.png").write_bytes(zf.read("pictures/anna-0.png"))
            (folder / "cards.yaml").write_bytes(zf.read("cards.yaml"))
        monkeypatch.setenv("KLICK_HOME", str(office.parent))
        send = carer_push(load_config(office))
        assert send is not None
        answers = send(folder / "cards.yaml", "hbg-01")
        assert [(d, o) for d, o, _ in answers] == [("hbg-01", "applied")]
        answers = send(folder / "cards.yaml", "norr")  # a group: hbg-03 is off
        assert [(d, o) for d, o, _ in answers] == [("hbg-01", "applied"), ("hbg-02", "applied"), ("hbg-03", "pending")]
        for name in procs:
            cards = (homes[name] / "cards.yaml").read_text()
            assert "Anna 1" in cards
        with pytest.raises(Exception, match="cannot be a device name"):
            send(folder / "cards.yaml", "hbg/01")
    finally:
        for p in procs.values():
            stop(p)
