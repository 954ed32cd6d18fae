"""Pushes without a broker: the signed envelope, the tablet's checks and swaps (real files, real
bundles), the record of versions, the groups file, the settings, status, and any bytes thrown at it.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet_push_kit import ALLOWED, make_bundle, set_files_hash, which_set  # noqa: E402

from fleet import envelope  # noqa: E402
from fleet.apply import STATE_FILE, Applier, ApplySettings  # noqa: E402
from fleet.push import PushError, answer_for, card_set, carer_push, read_groups, targets  # noqa: E402
from fleet.signing import (  # noqa: E402
    SigningKeyError,
    load_private_key,
    new_key_pair,
    public_key_from_text,
    public_text,
    write_private_key,
)
from fleet.status import format_lines, summarise  # noqa: E402
from klick.config import ConfigError, load_config  # noqa: E402

KEY = new_key_pair()
OTHER = new_key_pair()
AT = "2026-03-05T12:00:00.000Z"
QUESTIONNAIRE = Path(__file__).resolve().parent.parent / "config" / "questionnaire.yaml"


def tablet(home: Path, *, key: str | None = None, servers=(ALLOWED,)) -> Applier:
    return Applier(
        ApplySettings(
            device="hbg-01",
            home=home,
            cards_file=home / "cards.yaml",
            questionnaire_file=home / "questionnaire.yaml",
            allowed_servers=tuple(servers),
            signing_key=public_text(KEY) if key is None else key,
        )
    )


def sealed(body: bytes, version: int, *, kind="cards", device="hbg-01", key=KEY, name="set.klick") -> bytes:
    return envelope.seal(key, kind, device, version, body, name=name, at=AT)


@pytest.fixture
def home(tmp_path) -> Path:
    home = tmp_path / "tablet"
    home.mkdir()
    return home


@pytest.fixture
def bundles(tmp_path) -> dict[str, Path]:
    return {
        "a": make_bundle(tmp_path / "a.klick", "Anna", 2),
        "b": make_bundle(tmp_path / "b.klick", "Bertil", 3),
    }


# --- the envelope ---------------------------------------------------------------------------------


def test_a_sealed_push_opens_and_its_signature_covers_every_field():
    payload = sealed(b"the body", 7)
    e = envelope.open_envelope(payload)
    assert (e.kind, e.device, e.version, e.body) == ("cards", "hbg-01", 7, b"the body")
    assert envelope.signed_by(e, KEY.public_key()) and not envelope.signed_by(e, OTHER.public_key())
    header, body = payload.split(b"\n", 1)
    fields = json.loads(header)
    for name, value in [
        ("version", 8),
        ("device", "hbg-02"),
        ("kind", "questionnaire"),
        ("name", "x.klick"),
        ("at", "2026-03-05T12:00:01.000Z"),
    ]:
        changed = json.dumps({**fields, name: value}).encode() + b"\n" + body
        assert not envelope.signed_by(envelope.open_envelope(changed), KEY.public_key()), name
    # A changed body no longer matches the signed checksum.
    with pytest.raises(envelope.BadPush, match="checksum"):
        envelope.open_envelope(header + b"\nthe bodY")


def test_the_envelope_refuses_in_plain_words():
    good = sealed(b"x", 1)
    header = json.loads(good.split(b"\n", 1)[0])
    cases = {
        b"": "no header line",
        b"garbage\n": "not JSON",
        b'{"v": 2}\n': "not a Klick push of this version",
        json.dumps({k: v for k, v in header.items() if k != "sig"}).encode() + b"\nx": "not signed",
        json.dumps({**header, "version": -1}).encode() + b"\nx": "wrong version",
        json.dumps({**header, "version": True}).encode() + b"\nx": "wrong version",
        json.dumps({**header, "name": "../x"}).encode() + b"\nx": "wrong name",
        json.dumps(header).encode() + b"\nxy": "incomplete",
        b" " * (envelope.MAX_PUSH + 1): "16,777,217 bytes; a push may be at most 16,777,216 bytes",
        b" " * (20 * 1024 * 1024): "the push is 20.0 MB; a push may be at most 16.0 MB",
    }
    for payload, words in cases.items():
        with pytest.raises(envelope.BadPush, match=words):
            envelope.open_envelope(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda h, b: h + b"\n" + b, st.binary(max_size=200), st.binary(max_size=50)))
def test_any_bytes_are_an_envelope_or_a_plain_refusal(payload):
    try:
        envelope.open_envelope(payload)
    except envelope.BadPush as exc:
        assert str(exc) and "Traceback" not in str(exc)


# --- the keys -------------------------------------------------------------------------------------


def test_the_private_key_is_written_0600_never_over_another_and_refused_when_others_may_read_it(tmp_path):
    path = tmp_path / "office" / "fleet-office.key"
    write_private_key(KEY, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_text(load_private_key(path)) == public_text(KEY)
    with pytest.raises(SigningKeyError, match="exists already"):
        write_private_key(new_key_pair(), path)
    path.chmod(0o640)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_private_key(path)
    path.chmod(0o600)
    path.write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a signing key"):
        load_private_key(path)
    with pytest.raises(SigningKeyError, match="klick fleet keygen"):
        load_private_key(tmp_path / "nowhere.key")
    for text in ("", "abc", public_text(KEY)[:-4], "é" * 44):
        with pytest.raises(ValueError, match="44 characters"):
            public_key_from_text(text)


def test_keygen_never_replaces_a_key_made_by_another_keygen_at_the_same_moment(tmp_path):
    """Eight keygens at once: one key is written, the seven others are refused, none replaces it."""
    import threading

    path = tmp_path / "fleet-office.key"
    keys = [new_key_pair() for _ in range(8)]
    start = threading.Barrier(len(keys))
    written: list = []

    def keygen(key) -> None:
        start.wait()
        try:
            write_private_key(key, path)
            written.append(key)
        except SigningKeyError:
            pass

    threads = [threading.Thread(target=keygen, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(written) == 1
    assert public_text(load_private_key(path)) == public_text(written[0])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "klick-home") == ["fleet-office.key"]


def test_keygen_never_writes_through_a_link_where_the_key_goes(tmp_path):
    path = tmp_path / "fleet-office.key"
    path.symlink_to(tmp_path / "somewhere-else.key")
    with pytest.raises(SigningKeyError, match="exists already"):
        write_private_key(KEY, path)
    assert path.is_symlink() and not (tmp_path / "somewhere-else.key").exists()


def test_fleet_signing_key_in_klick_yaml_must_be_a_public_key(klick_home):
    (klick_home / "klick.yaml").write_text(f'fleet:\n  signing_key: "{public_text(KEY)}"\n')
    assert load_config().fleet.signing_key == public_text(KEY)
    (klick_home / "klick.yaml").write_text('locale: sv\nfleet:\n  signing_key: "-----BEGIN PRIVATE KEY-----"\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    assert "klick.yaml:3: fleet.signing_key must be the public key `klick fleet keygen` printed" in str(info.value.problems[0])
    assert "BEGIN" not in str(info.value.problems[0])  # a pasted private key is never echoed
    (klick_home / "klick.yaml").write_text("fleet:\n  office_key_file: keys/office.key\n  groups_file: g.yaml\n")
    cfg = load_config()
    assert cfg.fleet.office_key_file == klick_home / "keys" / "office.key" and cfg.fleet.groups_file == klick_home / "g.yaml"


# --- the tablet: applying -------------------------------------------------------------------------


def test_a_signed_newer_card_set_is_applied_and_a_redelivery_passes_silently(home, bundles):
    applier = tablet(home)
    assert applier.message() is None  # nothing pushed yet: nothing to say
    first = sealed(bundles["a"].read_bytes(), 10)
    outcome = applier.receive("cards", first)
    assert outcome is not None and outcome.ok and outcome.version == 10
    assert which_set(home, bundles) == "a"
    assert (home / "card-sets").is_dir() and not list(home.glob(".fleet-push-*"))
    assert applier.receive("cards", first) is None  # the retained message, delivered again
    again = tablet(home)  # a restart: the record is on disk
    assert again.receive("cards", first) is None
    message = again.message()
    assert message["cards"]["version"] == 10 and message["last"]["ok"] is True
    assert json.dumps(message) == json.dumps(applier.message())  # the same words, so no flapping
    assert again.receive("cards", sealed(bundles["b"].read_bytes(), 11)).ok
    assert which_set(home, bundles) == "b"
    assert (home / "cards.yaml.bak").exists()


def test_an_older_or_repeated_version_is_refused_once_and_changes_nothing(home, bundles):
    applier = tablet(home)
    assert applier.receive("cards", sealed(bundles["a"].read_bytes(), 10)).ok
    before = set_files_hash(home)
    older = sealed(bundles["b"].read_bytes(), 9)
    outcome = applier.receive("cards", older)
    assert not outcome.ok and "older than version 10 in force" in outcome.problems[0]
    same_version = sealed(bundles["b"].read_bytes(), 10)
    assert "in force already, with other contents" in applier.receive("cards", same_version).problems[0]
    assert set_files_hash(home) == before
    # The refused retained message comes again on every reconnect, and after a restart: said once.
    assert applier.receive("cards", same_version) is None
    assert tablet(home).receive("cards", same_version) is None
    assert tablet(home).message()["refused"]["cards"]["version"] == 10


def test_a_refusal_is_judged_again_once_the_installer_changes_the_settings(home, bundles):
    unsigned_tablet = tablet(home, key="")
    push = sealed(bundles["a"].read_bytes(), 5)
    assert "no fleet.signing_key" in unsigned_tablet.receive("cards", push).problems[0]
    assert tablet(home, key="").receive("cards", push) is None  # the same settings: said once
    assert tablet(home).receive("cards", push).ok  # the key is set now: taken
    assert which_set(home, bundles) == "a"


@pytest.mark.parametrize(
    ("name", "build", "words"),
    [
        ("unsigned", lambda b: _strip_sig(sealed(b, 20)), "it is not signed"),
        ("other key", lambda b: sealed(b, 20, key=OTHER), "not signed by the municipality's key"),
        ("other tablet", lambda b: sealed(b, 20, device="hbg-02"), "signed for the tablet hbg-02"),
        ("wrong topic", lambda b: sealed(b, 20, kind="questionnaire"), "questionnaire push sent on the cards topic"),
        ("not a zip", lambda b: sealed(b"PK not really", 20), "not a zip file"),
    ],
)
def test_a_push_the_tablet_must_not_take_changes_nothing(home, bundles, name, build, words):
    applier = tablet(home)
    assert applier.receive("cards", sealed(bundles["a"].read_bytes(), 10)).ok
    before = set_files_hash(home)
    outcome = applier.receive("cards", build(bundles["b"].read_bytes()))
    assert outcome is not None and not outcome.ok
    assert any(words in p for p in outcome.problems), outcome.problems
    assert set_files_hash(home) == before and which_set(home, bundles) == "a"
    assert applier.message()["refused"]["cards"]["problems"] == list(outcome.problems)


def _strip_sig(payload: bytes) -> bytes:
    header, body = payload.split(b"\n", 1)
    fields = json.loads(header)
    del fields["sig"]
    return json.dumps(fields).encode() + b"\n" + body


def test_a_damaged_record_of_versions_refuses_pushes_until_an_installer_looks(home, bundles):
    (home / STATE_FILE).write_text("{not json")
    applier = tablet(home)
    outcome = applier.receive("cards", sealed(bundles["a"].read_bytes(), 10))
    assert not outcome.ok and "is damaged; delete it to take pushes again" in outcome.problems[0]
    assert not (home / "cards.yaml").exists() and (home / STATE_FILE).read_text() == "{not json"
    (home / STATE_FILE).unlink()
    assert tablet(home).receive("cards", sealed(bundles["a"].read_bytes(), 10)).ok


def test_a_questionnaire_is_checked_as_the_launcher_checks_it_and_swapped_in(home):
    applier = tablet(home)
    good = QUESTIONNAIRE.read_bytes()
    assert applier.receive("questionnaire", sealed(good, 3, kind="questionnaire", name="q.yaml")).ok
    assert (home / "questionnaire.yaml").read_bytes() == good
    broken = good.replace(b"version: 1", b"version: [1]", 1) + b"\nquestions: 5\n"
    outcome = applier.receive("questionnaire", sealed(broken, 4, kind="questionnaire", name="q.yaml"))
    assert not outcome.ok and outcome.problems[0].startswith("questionnaire.yaml (pushed version 4):")
    assert (home / "questionnaire.yaml").read_bytes() == good
    assert applier.message()["questionnaire"]["version"] == 3


def test_a_questionnaire_the_tablet_cannot_write_is_tried_again_later(home):
    # Its folder cannot be written (here: a file stands where the folder should be; even root fails).
    target = home / "etc"
    target.write_text("a file, not a folder")
    applier = Applier(ApplySettings("hbg-01", home, home / "cards.yaml", target / "questionnaire.yaml", (), public_text(KEY)))
    push = sealed(QUESTIONNAIRE.read_bytes(), 3, kind="questionnaire", name="q.yaml")
    outcome = applier.receive("questionnaire", push)
    assert not outcome.ok and "paths.questionnaire must be in the data folder" in outcome.problems[0]
    # Handed over again (the next connection), it is tried again, and said again if it still fails.
    again = applier.receive("questionnaire", push)
    assert again is not None and not again.ok and again.problems == outcome.problems
    target.unlink()
    target.mkdir()
    again = Applier(ApplySettings("hbg-01", home, home / "cards.yaml", target / "questionnaire.yaml", (), public_text(KEY)))
    assert again.receive("questionnaire", push).ok  # its own trouble, not the push's: tried again after a restart
    assert (target / "questionnaire.yaml").read_bytes() == QUESTIONNAIRE.read_bytes()


def test_a_push_never_replaces_the_questionnaire_shipped_with_klick(home):
    from fleet.device import _pushable

    assert _pushable(QUESTIONNAIRE) is None and _pushable(home / "questionnaire.yaml") == home / "questionnaire.yaml"
    applier = Applier(ApplySettings("hbg-01", home, home / "cards.yaml", None, (), public_text(KEY)))
    before = QUESTIONNAIRE.read_bytes()
    outcome = applier.receive("questionnaire", sealed(before.replace(b"per_day: 3", b"per_day: 2"), 3, kind="questionnaire"))
    assert not outcome.ok and "set paths.questionnaire in klick.yaml to a file in the data folder" in outcome.problems[0]
    assert QUESTIONNAIRE.read_bytes() == before and not QUESTIONNAIRE.with_name("questionnaire.yaml.bak").exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=2000), kind=st.sampled_from(envelope.KINDS))
def test_any_bytes_on_a_push_topic_never_raise_and_never_change_the_set(tmp_path_factory, payload, kind):
    home = tmp_path_factory.mktemp("any")
    applier = tablet(home)
    outcome = applier.receive(kind, payload)
    assert outcome is None or not outcome.ok
    assert not (home / "cards.yaml").exists() and not (home / "questionnaire.yaml").exists()


# --- the office -----------------------------------------------------------------------------------


def test_the_groups_file_names_its_mistakes_by_line(tmp_path):
    path = tmp_path / "fleet-groups.yaml"
    path.write_text("groups:\n  norr:\n    - hbg-01\n    - hbg-02\n  syd:\n    - hbg-03\n")
    assert read_groups(path) == {"norr": ("hbg-01", "hbg-02"), "syd": ("hbg-03",)}
    assert targets(["hbg-09", "hbg-01"], ["norr", "syd"], path) == ["hbg-09", "hbg-01", "hbg-02", "hbg-03"]
    with pytest.raises(PushError, match="no group 'west'.*groups there: norr, syd"):
        targets([], ["west"], path)
    with pytest.raises(PushError, match="--device NAME or --group NAME"):
        targets([], [], path)
    path.write_text(
        "groups:\n  norr:\n    - hbg/01\n    - collector\n  syd: hbg-03\n  öst:\n    - hbg-04\n    - hbg-04\ngrupper: {}\n"
    )
    with pytest.raises(PushError) as info:
        read_groups(path)
    text = [str(p) for p in info.value.problems]
    assert any(":3:" in t and "cannot be a device name" in t for t in text)
    assert any(":4:" in t and "office user" in t for t in text)
    assert any(":5:" in t and "must be a list of tablets" in t for t in text)
    assert any(":8:" in t and "twice" in t for t in text)
    assert any(":9:" in t and "not a setting Klick knows" in t for t in text)


def test_the_office_refuses_a_broken_or_oversized_card_set_before_sending(tmp_path, bundles):
    data, name, _ = card_set(bundles["a"])
    assert data == bundles["a"].read_bytes() and name == "a.klick"
    broken = make_bundle(tmp_path / "broken.klick", "Anna", 1, extra="  - uid: 12\n    label: [x]\n")
    with pytest.raises(PushError, match="was refused") as info:
        card_set(broken)
    assert any("cards.yaml in broken.klick" in str(p) for p in info.value.problems)
    big = make_bundle(tmp_path / "big.klick", "Big", 1, members=[("pictures/huge.bin", os.urandom(17 * 1024 * 1024))])
    with pytest.raises(PushError, match="a push may be at most 16.0 MB"):
        card_set(big)
    # A card file is packed with its pictures first.
    folder = tmp_path / "anna"
    folder.mkdir()
    (folder / "cards.yaml").write_text(
        'version: 1\ncards:\n  - uid: "04AA"\n    label: Anna\n    action: {type: web, url: "https://example.se"}\n'
    )
    data, name, _ = card_set(folder / "cards.yaml")
    assert name == "anna.klick" and data[:2] == b"PK"


def test_the_carer_window_gets_no_push_without_a_broker_or_an_office_key(klick_home):
    (klick_home / "klick.yaml").write_text("locale: sv\n")
    assert carer_push(load_config()) is None
    (klick_home / "klick.yaml").write_text("fleet:\n  host: mqtt.kommun.se\n")
    assert carer_push(load_config()) is None  # no office key
    write_private_key(KEY, klick_home / "fleet-office.key")
    assert callable(carer_push(load_config()))
    (klick_home / "klick.yaml").write_text("locale: sv\n")
    assert carer_push(load_config()) is None  # a key, but no broker


def test_the_carer_words_for_a_push_exist_in_both_languages():
    from cards.carer.words import WORDS

    for key in (
        "send_to_tablet",
        "send_target",
        "send",
        "sending",
        "sent_applied",
        "sent_pending",
        "sent_refused",
        "send_failed",
    ):
        sv, en = WORDS[key]
        assert sv and en and sv != en, key


# --- status ---------------------------------------------------------------------------------------


def test_status_shows_the_pushed_versions_and_a_refusal_newer_than_what_is_in_force():
    now = 1772712000.0
    applied = {
        "v": 1,
        "device": "hbg-01",
        "cards": {"version": 12, "at": "2026-03-05T10:00:00.000Z", "name": "a.klick"},
        "questionnaire": {"version": 3, "at": "2026-03-05T09:00:00.000Z", "name": "q.yaml"},
        "refused": {"cards": {"version": 13, "at": "2026-03-05T11:00:00.000Z", "problems": ["it is not signed"]}},
    }
    state = {"v": 1, "online": True, "at": "2026-03-05T11:00:00.000Z", "since": "2026-03-05T08:00:00.000Z"}
    [status] = summarise({"hbg-01": {"state": state, "applied": applied}}, now)
    assert (status.cards_pushed, status.questionnaire_pushed) == (12, 3)
    assert status.last_refusal.startswith("card set v13 refused") and status.last_refusal.endswith("it is not signed")
    assert any(p.startswith("the pushed card set v13 refused") for p in status.problems)
    assert "pushed: cards v12, questions v3" in format_lines([status])[0]
    # Once a newer set is in force, the old refusal is history, not a problem.
    applied["cards"] = {"version": 14, "at": "2026-03-05T12:00:00.000Z"}
    [status] = summarise({"hbg-01": {"state": state, "applied": applied}}, now)
    assert status.last_refusal and not status.problems
    [garbled] = summarise({"x": {"state": state, "applied": {"garbled": True}}}, now)
    assert "its applied message cannot be read" in garbled.problems


def test_what_a_tablet_answered_about_a_push():
    applied = {"device": "d", "cards": {"version": 5, "at": AT}, "refused": {"cards": {"version": 6, "problems": ["no"]}}}
    assert answer_for(applied, "cards", 5).outcome == "applied"
    assert answer_for(applied, "cards", 6).outcome == "refused" and answer_for(applied, "cards", 6).detail == "no"
    assert answer_for(applied, "cards", 7) is None
    assert answer_for(applied, "questionnaire", 5) is None
