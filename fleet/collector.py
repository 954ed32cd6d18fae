"""``klick fleet collect``: every tablet's rows from the broker into one pilot database.

A persistent session under a fixed client id: while the collector is away the broker keeps the
messages for it. Messages are acknowledged by hand (paho's ``manual_ack``) and only after the
transaction holding them is committed, so a collector killed at any moment loses nothing; what
the broker then delivers again is stored once (see :mod:`fleet.pilot`).

Every message is data from outside: malformed, oversized, foreign or misplaced ones are counted
(``fleet_rejects``) and logged, never stored, and never end the collector.

When it sees a hole in a device's sequence (a batch lost, say by a broker that died before it
saved its queue), it asks that device to send again from the hole (a retained message on
``klick/D/set/resend``) and clears the request once the hole is filled. With a shared
subscription (``--share``, several collectors splitting the load) each collector sees only part
of every stream, so it cannot tell a hole from a batch its sibling took: no requests then.
"""

from __future__ import annotations

import logging
import queue
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet import wire
from fleet.mqtt import Access, connect_properties, make_client, refusal_words, session_id, why_not_connected
from fleet.pilot import PilotStore

__all__ = ["Collector", "handle_message"]

log = logging.getLogger("klick.fleet.collect")

#: Messages stored in one transaction, and the longest a message waits for its commit.
FLUSH_MESSAGES, FLUSH_S = 64, 0.05
SESSION_EXPIRY_S = 30 * 86_400
#: How often the collector looks for holes asked for long ago that have not begun to fill.
OVERDUE_EVERY_S = 5.0


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool = False


def handle_message(store: PilotStore, topic: str, payload: bytes, *, repair: bool = True, now: float | None = None) -> list:
    """Store one message (inside the caller's transaction); returns what to publish back.

    Never raises for what a message holds: a bad one is counted in ``fleet_rejects`` and leaves
    nothing else behind (a savepoint undoes whatever part of it was written).
    """
    store.conn.execute("SAVEPOINT message")
    try:
        out = _handle(store, topic, payload, repair=repair, now=now)
    except (sqlite3.IntegrityError, sqlite3.InterfaceError, ValueError, TypeError, OverflowError) as exc:
        # What the checks let through and the database still cannot hold is the message's fault,
        # not the disk's: undone, counted, acknowledged. (A full disk raises OperationalError and
        # stops the collector with nothing acknowledged: the broker keeps the messages.)
        store.conn.execute("ROLLBACK TO message")
        store.forget_counts()
        store.reject("unstorable", topic)
        log.warning("ignored a message on %s: %s", topic[:100], exc)
        out = []
    store.conn.execute("RELEASE message")
    return out


def _handle(store: PilotStore, topic: str, payload: bytes, *, repair: bool, now: float | None) -> list:
    where = wire.device_of(topic)
    if where is None:
        store.reject("foreign_topic", topic)
        return []
    device, leaf = where
    try:
        if leaf == wire.ROWS:
            result = store.apply(device, wire.decode_rows(payload, device), repair=repair, now=now)
            if isinstance(result, str):
                store.reject(result, topic)
                return []
            if result.refused:
                store.reject("after_withdrawal", topic)
            if result.over_limit:
                store.reject("too_many_rows", topic)
                if device not in store.over_limit:
                    store.over_limit.add(device)
                    log.warning(
                        "%s has sent %s rows, more than a tablet uses in years: its new rows are refused. "
                        "Is it broken, or not a Klick tablet any more? Look at it, and change its broker password",
                        device,
                        f"{store.max_rows_per_device:,}",
                    )
        elif leaf == wire.WITHDRAWN:
            if not payload:
                return []  # a cleared retained message
            obj = wire.decode_object(payload)
            gone = store.withdraw(device, str(obj.get("at") or "")[:40])
            log.info("%s withdrew consent: %d personal rows deleted from the pilot file", device, gone)
            return []
        elif leaf == wire.STATE:
            if not payload:
                return []
            obj = wire.decode_object(payload)
            acked = obj.get("acked")
            if type(acked) is not int or not 0 <= acked < 2**62:
                return []  # an offline will or a device without usage.db: nothing to learn
            result = store.heard(device, acked, repair=repair, now=now)
        else:
            store.reject("foreign_topic", topic)
            return []
    except wire.BadMessage as exc:
        store.reject(exc.reason, topic)
        log.warning("ignored a message on %s: %s", topic[:100], str(exc)[:200])
        return []
    out = []
    if result.resend_from is not None:
        out.append(resend_request(device, result.resend_from))
    elif result.resend_done:
        out.append((wire.topic(device, wire.RESEND), b""))
    return out


def resend_request(device: str, start: int) -> tuple[str, bytes]:
    """The retained message asking ``device`` to send its rows after ``start`` again (logged once)."""
    log.warning("%s: rows after %d are missing; asked it to send them again", device, start)
    request = {"v": wire.WIRE_VERSION, "from": start, "id": f"{int(time.time() * 1000)}"}
    return wire.topic(device, wire.RESEND), wire.encode(request)


class Collector:
    def __init__(
        self,
        access: Access,
        out: Path,
        *,
        client_id: str = "klick-collector",
        share: str | None = None,
        key_check: str = "",
        on_flush: Callable[[int], None] | None = None,
    ) -> None:
        self.store = PilotStore.open(out, key_check)
        self.access = access
        self.share = share
        self.repair = share is None
        self.on_flush = on_flush
        self.incoming: queue.Queue[Incoming | tuple] = queue.Queue()
        self.client = make_client(access, session_id(access, client_id), manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.incoming.put(("disconnect", str(rc)))
        self.client.on_connect_fail = lambda c, u: self.incoming.put(("unreachable", ""))
        #: The last thing said about the link (said again only when it changes), and when to look again.
        self.link_said: str | None = None
        self.diagnose_at = 0.0
        self.client.on_message = lambda c, u, m: self.incoming.put(Incoming(m.topic, bytes(m.payload), m.mid, m.qos, m.retain))
        self.stopping = False
        self.overdue_at = 0.0

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if rc.is_failure:
            self.incoming.put(("refused", refusal_words(rc)))
            return
        # A share group anyone may join: a tablet (whose password reads only its own pushes) that
        # joins the collectors' group is handed its turn of every tablet's rows, which the broker's
        # ACL then does not deliver: lost, and with --share no collector can ask for them again.
        # So the group's name on the broker is made from the collector's password, like its client id.
        rows = f"$share/{session_id(self.access, self.share)}/klick/+/rows" if self.share else "klick/+/rows"
        client.subscribe([(rows, 1), ("klick/+/withdrawn", 1), ("klick/+/state", 1)])
        self.incoming.put(("connected", ""))

    def run(self, *, until: Callable[[], bool] | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """Collect until stopped (SIGTERM, SIGINT, or ``until``); returns (row counts, refused messages)."""
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        self.client.connect_async(
            self.access.host, self.access.port, keepalive=30, clean_start=False, properties=connect_properties(SESSION_EXPIRY_S)
        )
        self.client.loop_start()
        try:
            while not self.stopping and not (until and until()):
                self.step(0.5)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            summary = self.store.counts(), self.store.rejects()
            self.store.close()
        return summary

    def stop(self) -> None:
        self.stopping = True

    def step(self, wait: float) -> None:
        """Take the messages that arrived, store them in one transaction, then acknowledge them."""
        if self.repair and time.monotonic() >= self.overdue_at:
            self.overdue_at = time.monotonic() + OVERDUE_EVERY_S
            self._ask_again()
        try:
            first = self.incoming.get(timeout=wait)
        except queue.Empty:
            return
        batch: list[Incoming] = []
        deadline = time.monotonic() + FLUSH_S
        item: Incoming | tuple | None = first
        while item is not None:
            if isinstance(item, Incoming):
                batch.append(item)
            elif item[0] == "connected":
                log.info("collecting from %s:%d", self.access.host, self.access.port)
                self.link_said, self.diagnose_at = None, 0.0
            elif item[0] == "disconnect":
                log.warning("the connection to the broker was lost (%s); trying again", item[1])
            elif item[0] == "refused":
                self._link_trouble(item[1])
            elif item[0] == "unreachable" and time.monotonic() >= self.diagnose_at:
                self.diagnose_at = time.monotonic() + 300.0
                self._link_trouble(why_not_connected(self.access, timeout=3.0))
            if len(batch) >= FLUSH_MESSAGES:
                break
            try:
                item = self.incoming.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
        if batch:
            self._store(batch)

    def _ask_again(self) -> None:
        self.store.begin()
        try:
            requests = [resend_request(device, start) for device, start in self.store.overdue()]
            self.store.commit()
        except Exception:
            self.store.rollback()
            raise
        for topic, payload in requests:
            self.client.publish(topic, payload, qos=1, retain=True)

    def _link_trouble(self, why: str) -> None:
        if why != self.link_said:
            log.warning("cannot reach the broker: %s; trying again", why)
            self.link_said = why

    def _store(self, batch: list[Incoming]) -> None:
        replies: list = []
        self.store.begin()
        try:
            for msg in batch:
                replies += handle_message(self.store, msg.topic, msg.payload, repair=self.repair)
            self.store.commit()
        except Exception:
            self.store.rollback()
            raise
        for msg in batch:
            if msg.qos:
                self.client.ack(msg.mid, msg.qos)
        for topic, payload in replies:
            self.client.publish(topic, payload, qos=1, retain=True)
        if self.on_flush:
            self.on_flush(len(batch))
