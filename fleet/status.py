"""``klick fleet status``: one line per tablet from the retained states on the broker, problems first.

Reading (:func:`read_retained`) is apart from judging (:func:`summarise`, pure), so the rules
can be tested on any states without a broker.

A tablet that stopped cleanly says so itself (``online: false`` with the time). One that vanished
gets its last will from the broker, which carries no time; then the time comes from ``seen``, the
copy of the last full state, which the will leaves alone: "offline since" is then when it was
last heard of (at most ``state_every_s`` off).
"""

from __future__ import annotations

import datetime as _dt
import queue
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from fleet import wire
from fleet.mqtt import Access, make_client, refusal_words, subscription_refused, why_not_connected
from klick.export import time_ok
from klick.usage import from_iso

__all__ = ["DeviceStatus", "read_retained", "summarise", "format_lines"]

DAY = 86_400.0
#: Rows waiting longer than this on a tablet that is online mean they are not getting through.
BACKLOG_STUCK_S = 3600.0


@dataclass
class DeviceStatus:
    device: str
    online: bool
    since: str | None
    last_heard: str | None
    reader: str | None
    reader_detail: str | None
    last_card_at: str | None
    backlog: int | None
    backlog_oldest_at: str | None
    cards_version: str | None
    app_version: str | None
    consent: str | None
    withdrawn: bool
    last_error: str | None
    #: The versions of the pushed card set and questionnaire in force (``applied``), if any.
    cards_pushed: int | None = None
    questionnaire_pushed: int | None = None
    #: The newest refusal of a push, in words ("card set v17, 2026-03-05T…: …"), if any.
    last_refusal: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_retained(access: Access, *, client_id: str, quiet_s: float = 0.6, limit_s: float = 10.0) -> dict[str, dict[str, Any]]:
    """Every device's retained state, seen and withdrawn messages: {device: {leaf: object}}.

    MQTT has no "that was all" for retained messages; they come right after the subscription is
    granted, so the reading stops once nothing has come for ``quiet_s``.
    """
    got: queue.Queue = queue.Queue()
    client = make_client(access, client_id)
    topics = [f"klick/+/{leaf}" for leaf in _LEAVES]
    client.on_connect = lambda c, u, f, rc, p: (
        got.put(("refused", refusal_words(rc))) if rc.is_failure else c.subscribe([(t, 1) for t in topics])
    )
    client.on_connect_fail = lambda c, u: got.put(("unreachable", ""))
    client.on_subscribe = lambda c, u, mid, rcs, p: got.put(
        ("subscribed", subscription_refused(access.username, topics, list(rcs)) or "")
    )
    client.on_message = lambda c, u, m: got.put((m.topic, bytes(m.payload)))
    client.connect_async(access.host, access.port, keepalive=30)
    client.loop_start()
    found: dict[str, dict[str, Any]] = {}
    try:
        end = time.monotonic() + limit_s
        subscribed = False
        while time.monotonic() < end:
            try:
                topic, payload = got.get(timeout=quiet_s if subscribed else max(0.0, end - time.monotonic()))
            except queue.Empty:
                if subscribed:
                    break
                continue
            if topic == "refused":
                raise ConnectionRefusedError(payload)
            if topic == "unreachable":
                raise ConnectionError(why_not_connected(access))
            if topic == "subscribed":
                if payload:
                    raise PermissionError(payload)
                subscribed = True
                continue
            where = wire.device_of(topic)
            if where is None or where[1] not in _LEAVES or not payload:
                continue
            try:
                found.setdefault(where[0], {})[where[1]] = wire.decode_object(payload)
            except wire.BadMessage:
                found.setdefault(where[0], {})[where[1]] = {"garbled": True}
        if not subscribed:
            raise TimeoutError(f"no answer within {limit_s:.0f} s: {why_not_connected(access)}")
    finally:
        client.disconnect()
        client.loop_stop()
    return found


_LEAVES = (wire.STATE, wire.SEEN, wire.WITHDRAWN, wire.APPLIED)
_WHAT = {"cards": "card set", "questionnaire": "questionnaire"}


def summarise(retained: dict[str, dict[str, Any]], now: float) -> list[DeviceStatus]:
    """One status per device, with its problems in plain words; problems first, then by name."""
    out = []
    for device, parts in retained.items():
        state, seen = parts.get(wire.STATE) or {}, parts.get(wire.SEEN) or {}
        full = state if "at" in state else seen
        online = state.get("online") is True
        if online:
            since = _time(state.get("since"))
        elif "at" in state:
            since = _time(state.get("at"))
        else:
            since = _time(seen.get("at"))
        reader = wire.mapping(full.get("reader"))
        status = DeviceStatus(
            device=device,
            online=online,
            since=since,
            last_heard=_time(full.get("at")),
            reader=_word(reader.get("state")),
            reader_detail=_word(reader.get("detail"), 80),
            last_card_at=_time(full.get("last_card_at")),
            backlog=_count(full.get("backlog")),
            backlog_oldest_at=_time(full.get("backlog_oldest_at")),
            cards_version=_word(full.get("cards_version")),
            app_version=_word(full.get("app_version")),
            consent=_word(full.get("consent")),
            withdrawn=wire.WITHDRAWN in parts,
            last_error=_word(full.get("last_error"), 160),
        )
        refusals = _pushes(status, parts.get(wire.APPLIED) or {})
        if not state and not seen:
            status.problems.append("has never said how it is")
        if state.get("garbled") or seen.get("garbled"):
            status.problems.append("its state message cannot be read")
        if not online and since and now - from_iso(since) > DAY:
            status.problems.append(f"offline for {_ago(now - from_iso(since))}")
        elif not online and not since:
            status.problems.append("offline, since an unknown time")
        if status.reader in ("lost", "searching"):
            status.problems.append(f"reader {status.reader}" + (f" ({status.reader_detail})" if status.reader_detail else ""))
        if online and status.backlog and status.backlog_oldest_at and now - from_iso(status.backlog_oldest_at) > BACKLOG_STUCK_S:
            status.problems.append(f"backlog growing: {status.backlog:,} rows waiting since {_show(status.backlog_oldest_at)}")
        if status.last_error:
            status.problems.append(f"last error: {status.last_error}")
        status.problems.extend(refusals)
        out.append(status)
    out.sort(key=lambda s: (not s.problems, s.online, s.device))
    return out


def _pushes(status: DeviceStatus, applied: dict[str, Any]) -> list[str]:
    """Fill in the pushed versions in force and the newest refusal; return the refusals that are
    problems: those newer than what is in force of their kind (the office meant something the
    tablet did not take)."""
    if applied.get("garbled"):
        return ["its applied message cannot be read"]
    in_force: dict[str, tuple[int, str]] = {}
    for kind in _WHAT:
        entry = applied.get(kind)
        if isinstance(entry, dict) and _count(entry.get("version")) is not None:
            in_force[kind] = (entry["version"], _time(entry.get("at")) or "")
    status.cards_pushed = in_force.get("cards", (None, ""))[0]
    status.questionnaire_pushed = in_force.get("questionnaire", (None, ""))[0]
    refused = wire.mapping(applied.get("refused"))
    newest: tuple[str, str] | None = None
    current: list[str] = []
    for kind, what in _WHAT.items():
        refusal = refused.get(kind)
        if not isinstance(refusal, dict):
            continue
        at = _time(refusal.get("at")) or ""
        version = refusal.get("version")
        problems = refusal.get("problems") if isinstance(refusal.get("problems"), list) else []
        first = _word(problems[0], 200) if problems and isinstance(problems[0], str) else "refused"
        words = (
            f"{what}{f' v{version}' if _count(version) is not None else ''} refused"
            + (f" {_show(at)}" if at else "")
            + f": {first}"
        )
        if newest is None or at > newest[0]:
            newest = (at, words)
        if at > in_force.get(kind, (0, ""))[1]:
            current.append(f"the pushed {words}")
    status.last_refusal = newest[1] if newest else None
    return current


def format_lines(statuses: list[DeviceStatus]) -> list[str]:
    if not statuses:
        # Mosquitto grants a subscription its ACL denies, and then sends nothing: the same silence.
        return ["No tablet has reported to this broker yet, or this broker user may not read their states (use the office user)."]
    width = max(len(s.device) for s in statuses)
    lines = []
    for s in statuses:
        where = ("online" if s.online else "OFFLINE") + (f" since {_show(s.since)}" if s.since else "")
        parts = [
            f"{s.device:<{width}}",
            f"{where:<30}",
            f"last card {_show(s.last_card_at) if s.last_card_at else '-':<16}",
            f"reader {s.reader or '?':<10}",
            f"backlog {s.backlog if s.backlog is not None else '?':<6}",
            f"cards {s.cards_version or '-'}",
        ]
        if s.cards_pushed is not None or s.questionnaire_pushed is not None:
            parts.append(
                f"pushed: cards {f'v{s.cards_pushed}' if s.cards_pushed is not None else '-'}, "
                f"questions {f'v{s.questionnaire_pushed}' if s.questionnaire_pushed is not None else '-'}"
            )
        if s.withdrawn:
            parts.append("consent withdrawn")
        line = "  ".join(parts)
        if s.problems:
            line += "  PROBLEM: " + "; ".join(s.problems)
        lines.append(line)
    return lines


def _count(value: Any) -> int | None:
    """A count or a version a tablet sent, if it is one (a JSON number may have thousands of digits)."""
    return value if type(value) is int and 0 <= value < 2**62 else None


def _time(value: Any) -> str | None:
    """A time a tablet sent, if it is one Klick writes (:func:`klick.export.time_ok`: the office can
    show it in its own time zone; a tablet may say year 1 or 9999, which no local clock can show)."""
    return value if time_ok(value) else None


def _word(value: Any, limit: int = 40) -> str | None:
    return wire.readable(value, limit)


def _show(stamp: str) -> str:
    """A stored UTC time as the reader's local time, to the minute."""
    return _dt.datetime.fromtimestamp(from_iso(stamp)).strftime("%Y-%m-%d %H:%M")


def _ago(seconds: float) -> str:
    days = seconds / DAY
    return f"{days:.0f} days" if days >= 2 else f"{seconds / 3600:.0f} hours"
