"""The office's side of a push: ``klick fleet push cards|questionnaire``, and the carer window's button.

A push to a group is a push to each of its tablets: the group list is a file the pusher reads
(``fleet.groups_file``, YAML, kept at the office), not a message on the broker. So no tablet reads
a topic other than its own, each copy is signed for one tablet (a copy cannot be replayed to
another), and the broker's ACL stays "a tablet reads only ``klick/<itself>/set/#``".

Each copy is published retained (QoS 1) on the tablet's own ``set/<kind>`` topic, one at a time
(a big card set is held in memory once, not once per tablet). A tablet that is off gets it from
the broker when it comes back. Before publishing, the pusher reads each tablet's retained
``applied`` and ``state``: the version is newer than anything the tablet reported, and ``--wait``
knows which tablets are online to wait for.
"""

from __future__ import annotations

import datetime as _dt
import queue
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet import envelope, wire
from fleet.apply import STATE_FILE
from fleet.mqtt import (
    Access,
    FleetSetupError,
    access_from_config,
    make_client,
    refusal_words,
    subscription_refused,
    why_not_connected,
)
from fleet.signing import SigningKeyError, load_private_key
from klick.problems import Problem
from klick.usage_file import iso

__all__ = [
    "PushError",
    "Result",
    "read_groups",
    "targets",
    "card_set",
    "questionnaire",
    "push",
    "carer_push",
    "format_results",
]

#: How long ``--wait`` waits for the tablets that are online, by default.
WAIT_S = 60.0
#: How long one publish may take to be acknowledged by the broker.
PUBLISH_S = 120.0


class PushError(Exception):
    """The push cannot be made; ``problems`` may name lines of a file."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass
class Result:
    device: str
    #: ``applied``, ``refused``, ``pending`` (the tablet is off: the broker keeps it), ``sent``
    #: (not waited for), ``no_answer`` (online, but silent until the time ran out), ``not_sent``.
    outcome: str
    version: int | None = None
    detail: str = ""


# --- who ------------------------------------------------------------------------------------------


def read_groups(path: Path) -> dict[str, tuple[str, ...]]:
    """The groups file: ``groups: {name: [device, ...]}``; :class:`PushError` naming each wrong line."""
    from klick.yamlfile import read_yaml

    doc = read_yaml(path, what="groups file")
    if not doc.ok:
        raise PushError(f"The groups file {path} cannot be used.", doc.sorted_problems())
    top = doc.mapping(doc.root, "")
    doc.unknown_keys(top, {"groups"}, "")
    groups: dict[str, tuple[str, ...]] = {}
    if "groups" in top:
        for name, (_key_node, value_node) in doc.mapping(top["groups"][1], "groups").items():
            if not isinstance(value_node, yaml.SequenceNode):
                doc.error(value_node, f"groups.{name} must be a list of tablets, one per line starting with '- '")
                continue
            members: list[str] = []
            for item in value_node.value:
                value = doc.value(item)
                problem = wire.check_device_name(value) if isinstance(value, str) else "it is not a name"
                if problem:
                    doc.error(item, f"groups.{name}: {problem}")
                elif value in members:
                    doc.error(item, f"groups.{name} lists {value} twice")
                else:
                    members.append(value)
            groups[name] = tuple(members)
    if not doc.ok:
        raise PushError(f"The groups file {path} has mistakes; nothing was sent.", doc.sorted_problems())
    return groups


def targets(devices: Iterable[str], groups: Iterable[str], groups_file: Path) -> list[str]:
    """The tablets named and the members of the groups named, each once, in order."""
    out: list[str] = []
    for device in devices:
        problem = wire.check_device_name(device)
        if problem:
            raise PushError(f"--device {problem}.")
        out.append(device)
    groups = list(groups)
    if groups:
        known = read_groups(groups_file)
        for group in groups:
            if group not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise PushError(f"There is no group {group!r} in {groups_file} (groups there: {listed}).")
            if not known[group]:
                raise PushError(f"The group {group!r} in {groups_file} has no tablets.")
            out.extend(known[group])
    if not out:
        raise PushError("Name the tablets: --device NAME or --group NAME (either may be given more than once).")
    return list(dict.fromkeys(out))


# --- what -----------------------------------------------------------------------------------------


def card_set(path: Path) -> tuple[bytes, str, list[str]]:
    """(bundle bytes, its name, notes) from a ``.klick`` bundle or a card file (packed here).

    Checked as ``klick cards unpack`` checks it, but without the tablet's own allow list of call
    servers (each tablet applies its own); so a broken bundle is refused at the office, before a
    tablet has to.
    """
    from cards.bundle import BundleError, pack_bundle, unpack_bundle
    from cards.registry import RegistryError, load_registry

    path = Path(path)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="klick-push-") as tmp:
        if path.suffix.lower() == ".klick":
            bundle = path
            name = envelope.safe_name(path.name, ".klick")
        else:
            try:
                registry = load_registry(path)
            except RegistryError as exc:
                raise PushError(f"The card file {path} has mistakes; nothing was sent.", exc.problems) from None
            except OSError as exc:
                raise PushError(f"The card file {path} cannot be read ({exc.strerror or exc}).") from None
            name = envelope.safe_name(path.parent.name or "cards", ".klick")
            bundle = Path(tmp) / name
            try:
                notes += pack_bundle(registry, path, bundle).notes
            except BundleError as exc:
                raise PushError(str(exc), exc.problems) from None
        try:
            size = bundle.stat().st_size
        except OSError as exc:
            raise PushError(f"The bundle {path} cannot be read ({exc.strerror or exc}).") from None
        too_big = envelope.size_problem(size + envelope.MAX_HEADER)
        if too_big:
            raise PushError(f"Not sent: {too_big}. Send fewer or smaller pictures, or carry this one on a USB stick.")
        data = bundle.read_bytes()
        try:
            checked = unpack_bundle(bundle, Path(tmp) / "check" / "cards.yaml", check_policy=False)
        except BundleError as exc:
            raise PushError(f"{exc} Nothing was sent.", exc.problems) from None
        notes += checked.notes
    return data, name, notes


def questionnaire(path: Path) -> tuple[bytes, str, list[str]]:
    """(the file's bytes, its name, notes), checked as the launcher checks it."""
    from klick.problems import errors_in
    from klick.questionnaire import check_questionnaire

    path = Path(path)
    checked, problems = check_questionnaire(path)
    if checked is None:
        raise PushError(f"The questionnaire {path} has mistakes; nothing was sent.", errors_in(problems) or problems)
    data = path.read_bytes()
    return data, envelope.safe_name(path.name, ".yaml"), [str(p) for p in problems]


# --- sending --------------------------------------------------------------------------------------


class _Office:
    """One connection as the office user: reads retained messages, publishes, waits for answers."""

    def __init__(self, access: Access, devices: list[str]) -> None:
        self.devices = devices
        self.events: queue.Queue = queue.Queue()
        self.client = make_client(access, f"klick-push-{secrets.token_hex(4)}")
        self.client.on_connect = lambda c, u, f, rc, p: self.events.put(("connect", rc))
        self.client.on_connect_fail = lambda c, u: self.events.put(("connect", None))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.events.put(("subscribed", mid, list(rcs)))
        self.client.on_publish = lambda c, u, mid, rc, p: self.events.put(("puback", mid, rc))
        self.client.on_message = lambda c, u, m: self.events.put(("message", m.topic, bytes(m.payload)))
        self.client.on_disconnect = lambda c, u, f, rc, p: self.events.put(("disconnect", rc))
        self.applied: dict[str, dict[str, Any]] = {}
        self.online: dict[str, bool] = {}
        self.access = access

    def open(self, timeout: float = 15.0) -> None:
        self.client.connect_async(self.access.host, self.access.port, keepalive=60)
        self.client.loop_start()
        rc = self._until("connect", timeout, f"no answer from the broker at {self.access.host}:{self.access.port}")[1]
        if rc is None:
            raise PushError(f"Not sent: {why_not_connected(self.access)}.")
        if rc.is_failure:
            raise PushError(f"Not sent: {refusal_words(rc)}.")
        topics = [(wire.topic(d, leaf), 1) for d in self.devices for leaf in (wire.APPLIED, wire.STATE)]
        pending: dict[int | None, list[str]] = {}
        for start in range(0, len(topics), 100):
            part = topics[start : start + 100]
            result, mid = self.client.subscribe(part)
            pending[mid] = [t for t, _ in part]
        while pending:
            _, mid, codes = self._until("subscribed", timeout, "the broker did not take the subscriptions")
            refused = subscription_refused(self.access.username, pending.pop(mid, []), codes)
            if refused:
                raise PushError(f"Not sent: {refused}.")
        self.drain(0.6)  # retained messages come right after the subscription; MQTT has no "that was all"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _until(self, kind: str, timeout: float, why: str) -> tuple:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise PushError(f"Not sent: {why} within {timeout:.0f} s.")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event[0] == kind:
                return event
            self.note(event)

    def note(self, event: tuple) -> None:
        if event[0] != "message":
            return
        where = wire.device_of(event[1])
        if where is None or where[0] not in self.devices:
            return
        try:
            obj = wire.decode_object(event[2]) if event[2] else {}
        except wire.BadMessage:
            return
        if where[1] == wire.APPLIED:
            self.applied[where[0]] = obj
        elif where[1] == wire.STATE:
            self.online[where[0]] = obj.get("online") is True

    def drain(self, quiet_s: float) -> None:
        while True:
            try:
                self.note(self.events.get(timeout=quiet_s))
            except queue.Empty:
                return

    def publish(self, topic: str, payload: bytes) -> str | None:
        """None when the broker took it; else why not, in words."""
        info = self.client.publish(topic, payload, qos=1, retain=True)
        if info.rc != 0:
            return f"the message could not be sent (paho error {info.rc})"
        end = time.monotonic() + PUBLISH_S
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=1.0)
            except queue.Empty:
                continue
            if event[0] == "puback" and event[1] == info.mid:
                rc = event[2]
                return f"the broker refused it ({rc}); check the office's rights in klick.acl" if rc.is_failure else None
            if event[0] == "disconnect":
                return "the broker closed the connection (is the message larger than max_packet_size in its klick.conf?)"
            self.note(event)
        return f"the broker did not acknowledge it within {PUBLISH_S:.0f} s"


def _versions_of(applied: dict[str, Any]) -> list[int]:
    found = []
    for kind in envelope.KINDS:
        entry = applied.get(kind)
        if isinstance(entry, dict) and type(entry.get("version")) is int:
            found.append(entry["version"])
    for part in (
        applied.get("last"),
        *((applied.get("refused") or {}).values() if isinstance(applied.get("refused"), dict) else ()),
    ):
        if isinstance(part, dict) and type(part.get("version")) is int:
            found.append(part["version"])
    return found


def answer_for(applied: dict[str, Any], kind: str, version: int) -> Result | None:
    """What a tablet's ``applied`` says about this push, or None while it says nothing yet."""
    device = str(applied.get("device", ""))
    # The refusal of this very push first: a tablet with a newer version in force (the office's
    # clock was once ahead, and the broker lost what the tablet last said) refuses it as a replay,
    # and must not be reported as having applied it.
    refused = applied.get("refused")
    refusal = refused.get(kind) if isinstance(refused, dict) else None
    if isinstance(refusal, dict) and refusal.get("version") == version:
        problems = refusal["problems"] if isinstance(refusal.get("problems"), list) else []
        said = [wire.readable(p, 400) for p in problems[:3]]
        return Result(device, "refused", version, "; ".join(p for p in said if p) or "refused")
    entry = applied.get(kind)
    if isinstance(entry, dict) and type(entry.get("version")) is int and entry["version"] >= version:
        return Result(device, "applied", entry["version"], wire.readable(entry.get("at"), 40) or "")
    return None


def push(
    access: Access,
    key: Ed25519PrivateKey,
    kind: str,
    body: bytes,
    name: str,
    devices: list[str],
    *,
    wait: bool = False,
    wait_s: float = WAIT_S,
    clock: Callable[[], float] = time.time,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Sign and publish ``body`` for each device; with ``wait``, wait for the tablets that are online."""
    if kind not in envelope.KINDS:
        raise ValueError(kind)
    too_big = envelope.size_problem(len(body) + envelope.MAX_HEADER)
    if too_big:
        raise PushError(f"Not sent: {too_big}.")
    office = _Office(access, devices)
    try:
        office.open()
        results: dict[str, Result] = {}
        at = iso(clock())
        base = int(clock() * 1000)
        for device in devices:
            version = max([base, *(v + 1 for v in _versions_of(office.applied.get(device, {})))])
            if version >= envelope.MAX_VERSION:
                # A tablet whose record says the largest version there is (damaged, or not honest):
                # nothing newer can be signed for it, and the others must still get theirs.
                results[device] = Result(device, "not_sent", None, _no_newer_version(version - 1))
                continue
            payload = envelope.seal(key, kind, device, version, body, name=name, at=at)
            why = office.publish(wire.topic(device, wire.SET[kind]), payload)
            results[device] = Result(device, "not_sent", version, why) if why else Result(device, "sent", version)
            if progress:
                progress(device)
            if why and "closed the connection" in why:
                break
        for device in devices:
            results.setdefault(device, Result(device, "not_sent", None, "not sent: the connection to the broker was lost"))
        if wait:
            _wait(office, kind, results, wait_s)
    finally:
        office.close()
    return [results[d] for d in devices]


def _no_newer_version(reported: int) -> str:
    shown = str(reported) if reported < envelope.MAX_VERSION else f"a number beyond {envelope.MAX_VERSION - 1}"
    return (
        f"the tablet says the version in force is {shown}, and no push can have a newer one; at the tablet, "
        f"delete its record of pushed versions ({STATE_FILE} in its data folder) and restart klick fleet, then push again"
    )


def _wait(office: _Office, kind: str, results: dict[str, Result], wait_s: float) -> None:
    end = time.monotonic() + wait_s
    while True:
        for device, result in results.items():
            if result.outcome not in ("sent", "pending"):
                continue
            answer = answer_for({**office.applied.get(device, {}), "device": device}, kind, result.version or 0)
            if answer is not None:
                results[device] = answer
            elif not office.online.get(device, False):
                result.outcome, result.detail = "pending", "the tablet is off; the broker keeps the push until it comes back"
            else:
                result.outcome, result.detail = "sent", ""
        waiting = [r for r in results.values() if r.outcome == "sent"]
        if not waiting or time.monotonic() >= end:
            for r in waiting:
                r.outcome, r.detail = "no_answer", f"no answer within {wait_s:.0f} s"
            return
        try:
            office.note(office.events.get(timeout=min(0.5, max(0.01, end - time.monotonic()))))
        except queue.Empty:
            pass


def format_results(kind: str, results: list[Result]) -> list[str]:
    width = max((len(r.device) for r in results), default=0)
    what = "card set" if kind == "cards" else "questionnaire"
    lines = []
    for r in results:
        v = f"v{r.version}" if r.version is not None else ""
        if r.outcome == "applied":
            text = f"applied   {what} {v}" + (f" at {_local(r.detail)}" if r.detail else "")
        elif r.outcome == "refused":
            text = f"REFUSED   {what} {v}: {r.detail}"
        elif r.outcome == "pending":
            text = f"pending   {what} {v}: {r.detail}"
        elif r.outcome == "sent":
            text = f"sent      {what} {v} (retained: a tablet that is off gets it when it comes back)"
        elif r.outcome == "no_answer":
            text = f"NO ANSWER {what} {v}: {r.detail}"
        else:
            text = f"NOT SENT  {what}: {r.detail}"
        lines.append(f"{r.device:<{width}}  {text}")
    return lines


def _local(stamp: str) -> str:
    from klick.usage_file import from_iso

    try:
        return _dt.datetime.fromtimestamp(from_iso(stamp)).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return stamp  # already one readable line (answer_for)


# --- the carer window's button --------------------------------------------------------------------


def carer_push(cfg: Any) -> Callable[[Path, str], list[tuple[str, str, str]]] | None:
    """What the carer window's "Send to the tablet…" calls, or None when this computer cannot push
    (no broker in ``fleet.host``, or no office key at ``fleet.office_key_file``): then no button.

    The callable takes the card file or bundle being edited and a tablet's or group's name, and
    returns (device, outcome, detail) per tablet, having waited for the tablets that are online.
    It raises :class:`PushError` with one plain sentence when nothing could be sent.
    """
    fleet = cfg.fleet
    if not fleet.host or not Path(fleet.office_key_file).is_file():
        return None

    def send(path: Path, target: str) -> list[tuple[str, str, str]]:
        target = target.strip()
        try:
            key = load_private_key(fleet.office_key_file)
            access = access_from_config(fleet, fleet.username or "office")
        except (SigningKeyError, FleetSetupError) as exc:
            raise PushError(str(exc)) from None
        groups = read_groups(fleet.groups_file) if Path(fleet.groups_file).is_file() else {}
        devices = targets([], [target], fleet.groups_file) if target in groups else targets([target], [], fleet.groups_file)
        body, name, _notes = card_set(path)
        try:
            results = push(access, key, "cards", body, name, devices, wait=True, wait_s=30.0)
        except OSError as exc:
            raise PushError(f"The broker at {fleet.host} cannot be reached ({exc.strerror or exc}).") from None
        return [(r.device, r.outcome, r.detail) for r in results]

    return send
