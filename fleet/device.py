"""``klick fleet``: the tablet's daemon that sends usage.db to the broker and says how the tablet is.

Store and forward. Each row that may leave has a sequence number (usage.db's triggers give it
one on every insert and update). The daemon publishes, in order and in batches, the rows after
the last number the broker acknowledged (QoS 1, a persistent session under a fixed client id),
and writes that number to usage.db only after the PUBACK. Killed at any moment, it starts again
from the mark: the broker may get a batch twice, never a row not at all. A batch the broker
refuses (MQTT 5 reason code) is not counted as sent.

Pushes: the office's signed card sets and questionnaires arrive on ``set/cards`` and
``set/questionnaire`` and are checked and swapped in by :mod:`fleet.apply`; what is in force (and
the last refusal) is said, retained, on ``applied``.

Presence: a retained ``state`` (online, versions, reader, backlog, disk, last error), refreshed
on change and every ``fleet.state_every_s``, and the broker's last will that sets it offline. A
copy goes to ``seen``, which the will leaves alone, so ``klick fleet status`` can still say when
an offline tablet was last heard of and what it last said.

The network thread (paho's) only puts what happened on a queue; one thread does the rest, so
nothing here needs a lock, and nothing here ever touches the launcher except through usage.db.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import queue
import secrets
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet import wire
from fleet.apply import Applier, ApplySettings
from fleet.mqtt import (
    Access,
    FleetSetupError,
    access_from_config,
    connect_properties,
    make_client,
    refusal_words,
    session_id,
    why_not_connected,
)
from fleet.outbox import WITHDRAWN_SENT, NotReady, Outbox
from klick import __version__
from klick.export import ExportError, card_hasher, key_check
from klick.usage import device_pseudonym, iso

__all__ = ["Device", "DeviceSettings", "settings_from_config", "run", "FleetSetupError"]

log = logging.getLogger("klick.fleet")

#: Batches in flight at once, and rows per batch: enough to fill a slow link, small enough that
#: a redelivery after a reconnect costs little.
WINDOW, BATCH_ROWS = 8, 500
#: A batch with no PUBACK after this long is given up and sent again (from the mark).
ACK_TIMEOUT_S = 60.0
#: While rows are acknowledged, the state (with the acknowledged mark) is said at most this often.
STATE_AFTER_ACK_S = 2.0
#: Seconds of silence after which the broker takes the tablet for gone (and sends its will) is 1.5 times this.
KEEPALIVE_S = 30
#: The broker keeps the tablet's session (its subscription to set/...) this long while it is away.
SESSION_EXPIRY_S = 7 * 86_400
#: While the broker cannot be reached, why is found out (and logged when it changes) at most this often.
DIAGNOSE_EVERY_S = 300.0


@dataclass(frozen=True)
class DeviceSettings:
    device: str
    access: Access
    usage_db: Path
    cards_file: Path
    export_key: str
    enrolled: bool
    #: The day consent was given; a withdrawal recorded later outlasts ``enrolled`` until a newer one.
    consent_date: _dt.date | None
    include_free_text: bool
    state_every_s: int
    max_backlog_days: int
    #: Where pushed card sets and questionnaires go, and what they are checked against.
    apply: ApplySettings


def settings_from_config(cfg: Any) -> DeviceSettings:
    """Everything the daemon needs, checked; raises :class:`FleetSetupError` with the fix."""
    device = device_pseudonym(cfg.pilot.device_name)
    username = cfg.fleet.username or device
    if username != device:
        raise FleetSetupError(
            f"fleet.username ({username}) must be this device's name in the data (pilot.device_name: {device}), "
            "so its rows arrive under its own topic; set both to the same name."
        )
    problem = wire.check_device_name(device)
    if problem:
        raise FleetSetupError(f"pilot.device_name: {problem}.")
    try:
        card_hasher(cfg.pilot.export_key)
    except ExportError as exc:
        raise FleetSetupError(str(exc)) from None
    return DeviceSettings(
        device=device,
        access=access_from_config(cfg.fleet, username),
        usage_db=Path(cfg.paths.usage_db),
        cards_file=Path(cfg.paths.registry),
        export_key=cfg.pilot.export_key,
        enrolled=cfg.pilot.enrolled,
        consent_date=cfg.pilot.consent_date,
        include_free_text=cfg.fleet.include_free_text,
        state_every_s=cfg.fleet.state_every_s,
        max_backlog_days=cfg.fleet.max_backlog_days,
        apply=ApplySettings(
            device=device,
            home=Path(cfg.paths.home),
            cards_file=Path(cfg.paths.registry),
            questionnaire_file=_pushable(Path(cfg.paths.questionnaire)),
            allowed_servers=tuple(cfg.calls.allowed_servers),
            signing_key=cfg.fleet.signing_key,
        ),
    )


def _pushable(questionnaire: Path) -> Path | None:
    """The questionnaire file a push may replace: not the one shipped in the program's own folder."""
    from klick.config import shipped_config_dir

    shipped = shipped_config_dir()
    if shipped is not None and questionnaire.resolve().is_relative_to(shipped.resolve()):
        return None
    return questionnaire


@dataclass
class _InFlight:
    after: int
    upto: int
    sent_at: float
    done: bool = False


@dataclass
class _Stream:
    """What this connection has published and not yet had acknowledged, in send order."""

    next_after: int = 0
    batches: dict[int, _InFlight] = field(default_factory=dict)


class Device:
    def __init__(self, settings: DeviceSettings, *, keepalive: int = KEEPALIVE_S, clock: Callable[[], float] = time.time) -> None:
        self.s = settings
        self.keepalive = keepalive
        self.clock = clock
        self.events: queue.Queue = queue.Queue()
        self.outbox = Outbox(
            settings.usage_db,
            card_hasher(settings.export_key),
            enrolled=settings.enrolled,
            consent_date=settings.consent_date,
            free_text=settings.include_free_text,
            device=settings.device,
        )
        self.key_check = key_check(settings.export_key)
        self.session = secrets.token_hex(6)
        self.client = make_client(settings.access, session_id(settings.access, f"klick-{settings.device}"))
        self.client.will_set(
            wire.topic(settings.device, wire.STATE),
            wire.encode({"v": wire.WIRE_VERSION, "online": False, "session": self.session}),
            qos=1,
            retain=True,
        )
        self.client.on_connect = lambda c, u, flags, rc, props: self.events.put(("connect", rc, flags.session_present))
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.events.put(("disconnect", rc))
        self.client.on_connect_fail = lambda c, u: self.events.put(("connect_fail",))
        self.client.on_publish = lambda c, u, mid, rc, props: self.events.put(("puback", mid, rc))
        self.client.on_message = lambda c, u, msg: self.events.put(("message", msg.topic, bytes(msg.payload)))
        self.connected = False
        self.acked = 0
        self.unwritten_ack: int | None = None
        self.stream = _Stream()
        self.withdrawn_mid: int | None = None
        self.state_mids: set[int] = set()
        self.last_state_at = 0.0
        self.state_acked = -1
        self.last_signature: tuple | None = None
        self.last_error: str | None = None
        #: Why the broker cannot be reached (the last diagnosis), and when to look again.
        self.link_error: str | None = None
        self.diagnose_at = 0.0
        self.ready = False
        self.retry_db_at = 0.0
        self.paused_until = 0.0
        self.online_since = iso(self.clock())
        self.handled_resend: str | None = None
        self.stopping = False
        self._cards_stat: tuple | None = None
        self._cards_version: str | None = None
        self.applier = Applier(settings.apply, clock=clock)

    # -- running --------------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        self.client.connect_async(
            self.s.access.host,
            self.s.access.port,
            keepalive=self.keepalive,
            clean_start=False,
            properties=connect_properties(SESSION_EXPIRY_S),
        )
        self.client.loop_start()
        log.info("klick fleet: %s reports to %s:%d", self.s.device, self.s.access.host, self.s.access.port)
        try:
            while not self.stopping:
                busy = self.step()
                try:
                    event = self.events.get(timeout=0.02 if busy else 0.5)
                except queue.Empty:
                    continue
                self.handle_safely(event)
                while True:
                    try:
                        self.handle_safely(self.events.get_nowait())
                    except queue.Empty:
                        break
        finally:
            self.goodbye()
        return 0

    def stop(self) -> None:
        self.stopping = True

    def goodbye(self) -> None:
        """Say offline (a normal disconnect sends no will), then go."""
        if self.connected:
            try:
                info = self.client.publish(
                    wire.topic(self.s.device, wire.STATE), wire.encode(self._state(online=False)), qos=1, retain=True
                )
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError, OSError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self._write_ack()
        self.outbox.close()

    # -- one turn of the loop ---------------------------------------------------------------------
    def step(self) -> bool:
        """Read usage.db and publish what is due; True when there is more to send right away."""
        now = self.clock()
        if self.ready and self.outbox.replaced():
            self._db_replaced()
        if not self._db_ready(now):
            if self.connected and now - self.last_state_at >= self.s.state_every_s:
                self.publish_state()
            return False
        try:
            self._write_ack()
            if not self.connected:
                return False
            self._maybe_withdrawn()
            signature = self.outbox.signature()
            if signature != self.last_signature or now - self.last_state_at >= self.s.state_every_s:
                self.last_signature = signature
                self.publish_state()
            self._expire_stale(now)
            more = False if now < self.paused_until else self._send_rows(now)
            # The collector learns from the state how far the broker has acknowledged, and so sees a
            # batch it never got: say it soon after a change, and at once when all is sent.
            drained = not self.stream.batches and self.stream.next_after == self.acked
            if self.acked != self.state_acked and (drained or now - self.last_state_at >= STATE_AFTER_ACK_S):
                self.publish_state()
            return more
        except sqlite3.Error as exc:
            self._db_failed(f"usage.db could not be read ({exc})")
            return False
        except Exception as exc:  # data must never end the daemon: say it, wait, try again
            log.exception("klick fleet: unexpected trouble; trying again in 10 s")
            self._db_failed(f"unexpected trouble ({type(exc).__name__}: {exc})")
            return False

    def _db_ready(self, now: float) -> bool:
        if self.ready:
            return True
        if now < self.retry_db_at:
            return False
        try:
            self.outbox.open()
            self.acked = self.outbox.acked()
            self.stream = _Stream(next_after=self.acked)
            # The rule that keeps unsent rows past retention needs the mark, even before the first send.
            self.outbox.set_acked(self.acked, self.s.max_backlog_days)
        except (NotReady, sqlite3.Error) as exc:
            self._db_failed(str(exc))
            return False
        self.ready = True
        if self.last_error and self.last_error.startswith("usage.db"):
            self.last_error = None
        return True

    def _db_replaced(self) -> None:
        """usage.db is another file now (a damaged one moved aside, or deleted by `klick pilot withdraw`):
        read the new one from its own mark, with its own consent. What was in flight belongs to the old."""
        log.warning("klick fleet: %s was replaced; reading the new file", self.s.usage_db)
        self.outbox.close()
        self.ready = False
        self.retry_db_at = 0.0
        self.unwritten_ack = None
        self.withdrawn_mid = None
        self.last_signature = None
        self.stream = _Stream()

    def _db_failed(self, why: str) -> None:
        if self.last_error != f"usage.db: {why}":
            log.warning("klick fleet: waiting for usage.db: %s", why)
        self.last_error = f"usage.db: {why}"
        self.outbox.close()
        self.ready = False
        self.retry_db_at = self.clock() + 10.0

    def _send_rows(self, now: float) -> bool:
        sent_any = False
        while len(self.stream.batches) < WINDOW:
            batch = self.outbox.read_batch(self.stream.next_after, self.key_check, BATCH_ROWS)
            if batch is None:
                return sent_any
            for part, payload in wire.fitted(batch):
                info = self.client.publish(wire.topic(self.s.device, wire.ROWS), payload, qos=1)
                if info.rc != 0:
                    return False
                self.stream.batches[info.mid] = _InFlight(part.after, part.upto, now)
                self.stream.next_after = part.upto
            sent_any = True
        return False

    def _expire_stale(self, now: float) -> None:
        oldest = min((b.sent_at for b in self.stream.batches.values() if not b.done), default=None)
        if oldest is not None and now - oldest > ACK_TIMEOUT_S:
            log.warning(
                "klick fleet: no acknowledgement from the broker for %.0f s; sending again from %d", now - oldest, self.acked
            )
            self._restart_stream(self.acked)

    def _restart_stream(self, start: int) -> None:
        self.stream = _Stream(next_after=start)

    def _maybe_withdrawn(self) -> None:
        if self.withdrawn_mid is not None or self.outbox.consent() != "withdrawn" or self.outbox.meta(WITHDRAWN_SENT):
            return
        at = self.outbox.withdrawn_at()
        info = self.client.publish(
            wire.topic(self.s.device, wire.WITHDRAWN),
            wire.encode({"v": wire.WIRE_VERSION, "at": at}),
            qos=1,
            retain=True,
        )
        if info.rc == 0:
            self.withdrawn_mid = info.mid
            log.info("klick fleet: consent withdrawn (%s); told the broker", at)

    # -- what paho told us ----------------------------------------------------------------------
    def handle_safely(self, event: tuple) -> None:
        """:meth:`handle`, under the same guard as :meth:`step`: data must never end the daemon."""
        try:
            self.handle(event)
        except (NotReady, sqlite3.Error) as exc:
            self._db_failed(f"usage.db could not be read ({exc})")
        except Exception as exc:  # a damaged file or a strange message: say it, carry on
            log.exception("klick fleet: unexpected trouble with a %s from the broker; carrying on", event[0])
            self.last_error = f"unexpected trouble ({type(exc).__name__}: {exc})"

    def handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "connect":
            _, rc, _present = event
            if rc.is_failure:
                self._link_trouble(refusal_words(rc))
                return
            self.connected = True
            if self.link_error is not None and self.last_error == self.link_error:
                self.last_error = None
            self.link_error, self.diagnose_at = None, 0.0
            self.online_since = iso(self.clock())
            self._restart_stream(self.acked)
            self.withdrawn_mid = None
            self.client.subscribe([(wire.topic(self.s.device, leaf), 1) for leaf in (wire.RESEND, *wire.SET.values())])
            log.info("klick fleet: connected")
            self.publish_state()
            self.publish_applied()
        elif kind == "disconnect":
            if self.connected:
                log.warning("klick fleet: connection to the broker lost (%s); trying again", event[1])
            self.connected = False
        elif kind == "connect_fail":
            if self.clock() >= self.diagnose_at:
                self.diagnose_at = self.clock() + DIAGNOSE_EVERY_S
                self._link_trouble(why_not_connected(self.s.access, timeout=3.0))
        elif kind == "puback":
            self._puback(event[1], event[2])
        elif kind == "message":
            self._message(event[1], event[2])

    def _link_trouble(self, why: str) -> None:
        """Say why the broker cannot be reached: in the log when it changes (paho retries for ever, so
        a month without the broker is one line, not thousands), and in the next state it sends."""
        if why != self.link_error:
            log.warning("klick fleet: cannot reach the broker: %s; trying again", why)
        self.link_error = self.last_error = why

    def _puback(self, mid: int, rc: Any) -> None:
        if mid == self.withdrawn_mid:
            if not rc.is_failure and self.outbox.set_meta({WITHDRAWN_SENT: iso(self.clock())}):
                return
            self.withdrawn_mid = None  # sent again on the next turn
            return
        if mid in self.state_mids:
            self.state_mids.discard(mid)
            return
        batch = self.stream.batches.get(mid)
        if batch is None:
            return  # a batch of an earlier stream, acknowledged late: its rows are sent again anyway
        if rc.is_failure:
            self.last_error = f"the broker refused the rows ({rc}); check its ACL for this device"
            log.error("klick fleet: %s", self.last_error)
            self._restart_stream(self.acked)
            self.paused_until = self.clock() + 30.0
            return
        batch.done = True
        # The mark moves over the leading run of acknowledged batches only: never past a gap.
        for m in list(self.stream.batches):
            b = self.stream.batches[m]
            if not b.done:
                break
            self.acked = max(self.acked, b.upto)
            del self.stream.batches[m]
        self.unwritten_ack = self.acked
        self._write_ack()

    def _write_ack(self) -> None:
        if self.unwritten_ack is not None and self.ready:
            if self.outbox.set_acked(self.unwritten_ack, self.s.max_backlog_days):
                self.unwritten_ack = None

    def _message(self, topic: str, payload: bytes) -> None:
        for kind, leaf in wire.SET.items():
            if topic == wire.topic(self.s.device, leaf):
                if self.applier.receive(kind, payload) is not None:
                    self.publish_applied()
                    self.publish_state()  # with the new card file's hash
                return
        if topic != wire.topic(self.s.device, wire.RESEND) or not payload:
            return
        try:
            request = wire.decode_object(payload)
        except wire.BadMessage as exc:
            log.warning("klick fleet: ignored a resend request: %s", exc)
            return
        start, rid = request.get("from"), str(request.get("id", ""))[:40]
        if type(start) is not int or start < 0 or rid == self.handled_resend:
            return
        self.handled_resend = rid
        if start < self.acked:
            log.info("klick fleet: the collector misses rows after %d; sending them again", start)
            self.acked = start
            self.unwritten_ack = start
            self._write_ack()
        self._restart_stream(min(start, self.acked))

    # -- state ----------------------------------------------------------------------------------
    def publish_applied(self) -> None:
        """What is in force and the last refusals (retained); the same bytes until something changes."""
        message = self.applier.message()
        if message is None or not self.connected:
            return
        info = self.client.publish(wire.topic(self.s.device, wire.APPLIED), wire.encode(message), qos=1, retain=True)
        if info.rc == 0:
            self.state_mids.add(info.mid)

    def publish_state(self) -> None:
        if not self.connected:
            return
        payload = wire.encode(self._state(online=True))
        for leaf in (wire.STATE, wire.SEEN):
            info = self.client.publish(wire.topic(self.s.device, leaf), payload, qos=1, retain=True)
            if info.rc == 0:
                self.state_mids.add(info.mid)
        self.last_state_at = self.clock()
        self.state_acked = self.acked

    def _state(self, online: bool) -> dict[str, Any]:
        now = iso(self.clock())
        state: dict[str, Any] = {
            "v": wire.WIRE_VERSION,
            "online": online,
            "at": now,
            "since": self.online_since if online else now,
            "session": self.session,
            "app_version": __version__,
            "cards_version": self._cards(),
            "last_error": self.last_error or self.outbox.last_skipped,
            "state_every_s": self.s.state_every_s,
        }
        if self.ready:
            try:
                h = self.outbox.health(self.acked)
                state.update(
                    reader={"state": h.reader_state, "detail": h.reader_detail, "at": h.reader_at},
                    last_card_at=h.last_card_at,
                    backlog=h.backlog,
                    backlog_oldest_at=h.backlog_oldest_at,
                    disk_free_mb=h.disk_free_mb,
                    consent=self.outbox.consent(),
                    seq=h.last_seq,
                    acked=self.acked,
                )
            except sqlite3.Error as exc:
                state["last_error"] = f"usage.db could not be read ({exc})"
        return state

    def _cards(self) -> str | None:
        """A short hash of cards.yaml: tells the office which card set is in force (not what is on it)."""
        try:
            st = self.s.cards_file.stat()
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._cards_stat:
            try:
                self._cards_version = "sha256:" + hashlib.sha256(self.s.cards_file.read_bytes()).hexdigest()[:12]
            except OSError:
                return None
            self._cards_stat = key
        return self._cards_version


def run(cfg: Any, *, keepalive: int = KEEPALIVE_S) -> int:
    """The daemon's entry: 0 when the fleet is off or stopped; :class:`FleetSetupError` when it cannot start."""
    if not cfg.fleet.host:
        log.info("klick fleet: off (klick.yaml has no fleet: section with a host)")
        Outbox(cfg.paths.usage_db, lambda uid: uid, enrolled=False, free_text=False).forget_marks()
        return 0
    settings = settings_from_config(cfg)
    lock = _only_daemon(settings.apply.home)
    try:
        return Device(settings, keepalive=keepalive).run()
    finally:
        if lock is not None:
            lock.close()


#: The lock file in the data folder: held by the one `klick fleet` of this tablet while it runs.
LOCK_FILE = "fleet.lock"


def _only_daemon(home: Path) -> Any:
    """Hold the data folder's fleet lock, or raise :class:`FleetSetupError` naming the daemon that holds it.

    Two daemons of one tablet (the service, and one started by hand) share its broker name, so the
    broker closes each one's connection as the other connects, once a second, for ever; they
    would also apply the same push at once. A folder whose lock cannot be made at all is no
    reason to stop reporting: it is logged and the daemon runs without it.
    """
    import fcntl

    path = home / LOCK_FILE
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as exc:
        log.warning("klick fleet: cannot make the lock file %s (%s); not checking for a second klick fleet", path, exc)
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(40).strip()
        handle.close()
        raise FleetSetupError(
            f"Another klick fleet{f' (process {holder})' if holder.isdigit() else ''} already reports this tablet "
            f"(it holds {path}). One is enough: the broker lets only one connection use the tablet's name. "
            "Stop the other one first (sudo systemctl stop klick-fleet, or Ctrl+C where it runs)."
        ) from None
    except OSError as exc:
        handle.close()
        log.warning("klick fleet: cannot lock %s (%s); not checking for a second klick fleet", path, exc)
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
