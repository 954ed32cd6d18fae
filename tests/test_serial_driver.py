"""The serial driver against the firmware simulator through a real pseudo-terminal.

No mocks: pyserial opens the pty slave behind a symlink (as udev's /dev/klick-reader would be),
the simulator speaks the protocol on the master. Waits are generous and nothing asserts a time.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from firmware_bridge import protocol as p
from firmware_bridge.serial_driver import SerialDriver
from firmware_bridge.sim_driver import SimDriver
from firmware_bridge.simulator import Simulator
from klick.config import ReaderConfig

WAIT = 15.0


class Recorder:
    """A ReaderSink that remembers every call and lets a test wait for one."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._cond = threading.Condition()

    def _add(self, call: tuple) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def seen(self, uid: str, at: float) -> None:
        assert isinstance(at, float)
        self._add(("seen", uid))

    def gone(self, at: float) -> None:
        self._add(("gone",))

    def tapped(self, uid: str, at: float) -> None:
        self._add(("tapped", uid))

    def status(self, state: str, detail: str, mode: str = "slot") -> None:
        assert detail and mode == "slot"
        self._add(("status", state, detail))

    def count(self, *call) -> int:
        with self._cond:
            return sum(1 for c in self.calls if c[: len(call)] == call)

    def wait(self, *call, count: int = 1, timeout: float = WAIT) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(1 for c in self.calls if c[: len(call)] == call) >= count, timeout)
        assert ok, f"no {call} x{count} within {timeout} s; calls: {self.calls}"

    def last_level(self):
        with self._cond:
            levels = [c for c in self.calls if c[0] in ("seen", "gone")]
        return levels[-1] if levels else None


@pytest.fixture
def rig(tmp_path):
    """A simulator behind a symlink, the real SerialDriver running in a thread."""
    link = tmp_path / "klick-reader"
    sims: list[Simulator] = []

    def plug(**kw) -> Simulator:
        sim = Simulator(link=link, **kw).start()
        sims.append(sim)
        return sim

    sink = Recorder()
    driver = SerialDriver(ReaderConfig(driver="serial", device=str(link)), sink)
    stop = threading.Event()
    thread = threading.Thread(target=driver.run, args=(stop,), daemon=True)

    class Rig:
        pass

    r = Rig()
    r.link, r.plug, r.sink, r.driver, r.sims = link, plug, sink, driver, sims
    r.start = thread.start
    yield r
    stop.set()
    if thread.ident is not None:
        thread.join(timeout=WAIT)
        assert not thread.is_alive(), "the driver did not stop"
    for sim in sims:
        sim.close()


def test_card_in_and_out_become_seen_and_gone(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    rig.sink.wait("gone")  # the STATUS answer at connect: the slot is empty
    sim.insert("04:a2:b3:c4:d5:e6:80")
    rig.sink.wait("seen", "04A2B3C4D5E680")
    sim.remove()
    rig.sink.wait("gone", count=2)
    assert rig.sink.calls[0][:2] == ("status", "searching")
    assert sim.wait_received(p.Identify) and sim.wait_received(p.Status)


def test_a_card_already_in_the_slot_is_reported_at_connect(rig):
    rig.plug(card=bytes.fromhex("0102030405060708"))
    rig.start()
    rig.sink.wait("seen", "0102030405060708")


def test_unplug_is_lost_and_a_new_reader_on_the_same_path_is_connected_without_restart(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    sim.close()
    rig.sink.wait("status", "lost")
    lost = [c for c in rig.sink.calls if c[:2] == ("status", "lost")][0]
    assert "unplugged" in lost[2] or "not answering" in lost[2]
    rig.plug(card=b"\x0a\x0b")  # a new pty (the kernel may reuse the number); same symlink
    rig.sink.wait("status", "connected", count=2)
    rig.sink.wait("seen", "0A0B")
    assert rig.driver.connections >= 2


def test_reader_missing_at_start_is_searching_then_found(rig):
    rig.start()
    rig.sink.wait("status", "searching")
    rig.plug()
    rig.sink.wait("status", "connected")
    assert rig.sink.count("status", "lost") == 0


def test_a_version_1_readers_lost_event_is_noticed_by_the_counter_and_status_gives_the_truth(rig):
    sim = rig.plug(heartbeat_interval=0.2, protocol_version=1)
    rig.start()
    rig.sink.wait("status", "connected")
    sim.wait_received(p.Status)
    rig.sink.wait("gone")
    sim.drop_next_events(1)
    sim.insert("DEADBEEF")  # never reaches the line; the next heartbeat shows counter 1
    assert sim.wait_received(p.Status, count=2, timeout=WAIT)
    rig.sink.wait("seen", "DEADBEEF")
    assert rig.sink.last_level() == ("seen", "DEADBEEF")


def test_a_version_2_reader_resends_a_lost_event_and_a_brief_card_still_counts(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    assert rig.driver.session.version == 2
    sim.wait_received(p.Status)
    rig.sink.wait("gone")
    sim.drop_next_events(2)  # both events of a brief insertion miss the line the first time
    sim.insert("DEADBEEF")
    sim.remove()
    rig.sink.wait("seen", "DEADBEEF")
    rig.sink.wait("gone", count=2)
    assert rig.sink.last_level() == ("gone",)
    assert sim.wait_received(p.EventAck)
    deadline = time.monotonic() + WAIT
    while sim.unacknowledged:
        assert time.monotonic() < deadline, "the reader still holds unacknowledged events"
        time.sleep(0.02)
    assert sum(isinstance(m, p.Status) for m in sim.received) == 1  # no STATUS needed: the events came


def test_garbage_on_the_line_is_counted_and_ignored(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    sim.inject(b"\x00\xff hello \x7e\x40\x10\x7e" + bytes(range(256)) + b"\x7e")
    sim.insert("11223344")
    rig.sink.wait("seen", "11223344")
    assert rig.driver.garbage >= 2
    assert rig.sink.count("status", "lost") == 0


def test_led_and_beep_are_acknowledged_and_resent_when_the_ack_is_lost(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    sim.wait_received(p.Status)
    assert rig.driver.led(0, 200, 0)
    assert sim.wait_received(p.Led)
    sim.acks_to_skip = 2  # the first two tries of the beep vanish
    assert rig.driver.beep(250)
    assert sim.wait_received(p.Beep, count=3)
    assert sim.beeps == [250] and sim.led == (0, 200, 0)
    assert rig.sink.count("status", "lost") == 0


def test_a_brief_card_while_the_connection_was_down_is_fetched_when_it_comes_back(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    rig.sink.wait("gone")
    sim.silent = True  # hung for a moment: no heartbeats, no answers; the host gives up after 3 s
    rig.sink.wait("status", "lost")
    sim.drop_next_events(2)
    sim.insert("CAFE0001")  # a brief card while nobody listens
    sim.remove()
    sim.silent = False
    rig.sink.wait("status", "connected", count=2)
    rig.sink.wait("seen", "CAFE0001")  # the new connection fetched it from the reader's eight
    deadline = time.monotonic() + WAIT
    while rig.sink.last_level() != ("gone",):  # and then its removal
        assert time.monotonic() < deadline, rig.sink.calls
        time.sleep(0.02)


def test_a_version_1_reader_that_never_acknowledges_is_not_answering_and_is_retried(rig):
    sim = rig.plug(protocol_version=1)
    rig.start()
    rig.sink.wait("status", "connected")
    sim.wait_received(p.Status)
    sim.acks_to_skip = 4  # the LED and all three resends
    assert rig.driver.led(255, 0, 0)
    rig.sink.wait("status", "lost")
    assert ("status", "lost", p.NOT_ANSWERING) in rig.sink.calls
    assert sim.wait_received(p.Led, count=4)
    rig.sink.wait("status", "connected", count=2)  # the same reader, reopened


def test_a_version_2_reader_is_not_answering_only_after_three_seconds_without_any_ack(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    sim.wait_received(p.Status)
    sim.acks_to_skip = 4  # an LED lost four times on a noisy line: reported, not fatal
    assert rig.driver.led(255, 0, 0)
    assert sim.wait_received(p.Led, count=4)
    sim.acks_to_skip = 10**6  # now nothing is acknowledged at all, while STATUS is asked again and again
    assert rig.driver.request_status()
    rig.sink.wait("status", "lost")
    assert ("status", "lost", p.NOT_ANSWERING) in rig.sink.calls
    assert sum(isinstance(m, p.Status) for m in sim.received) > 4  # asked again, not given up at once
    sim.acks_to_skip = 0
    rig.sink.wait("status", "connected", count=2)


def test_silent_firmware_is_lost_after_the_heartbeat_timeout(rig):
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    sim.wait_received(p.Status)  # handshake done, nothing waits for an ACK
    rig.sink.wait("gone")
    sim.silent = True
    rig.sink.wait("status", "lost")
    assert ("status", "lost", p.STOPPED) in rig.sink.calls
    sim.silent = False
    rig.sink.wait("status", "connected", count=2)


def test_the_port_is_opened_exclusively(rig):
    import serial

    rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    with pytest.raises(serial.SerialException):
        serial.Serial(str(rig.link), exclusive=True)


def test_firmware_of_another_protocol_version_is_refused_in_plain_words(rig):
    rig.plug(protocol_version=3)
    rig.start()
    rig.sink.wait("status", "lost")
    detail = [c for c in rig.sink.calls if c[:2] == ("status", "lost")][0][2]
    assert "version 3" in detail and "versions 1, 2" in detail and rig.sink.count("status", "connected") == 0


def test_odd_length_ids_are_refused_not_padded(tmp_path):
    from klick.uid import UidError

    with Simulator(link=tmp_path / "r") as sim, pytest.raises(UidError, match="even number"):
        sim.insert("12345")


def test_commands_without_a_reader_are_refused_not_queued(rig):
    assert rig.driver.led(1, 2, 3) is False
    with pytest.raises(p.FieldError):
        rig.driver.beep(-1)


def test_sim_driver_runs_the_real_serial_path_and_survives_a_replug():
    sink = Recorder()
    drv = SimDriver(ReaderConfig(driver="sim"), sink)
    stop = threading.Event()
    thread = threading.Thread(target=drv.run, args=(stop,), daemon=True)
    thread.start()
    try:
        sink.wait("status", "connected")
        drv.insert("04 a2 b3 c4")
        sink.wait("seen", "04A2B3C4")
        drv.unplug()
        sink.wait("status", "lost")
        drv.replug()  # the card stayed in the slot
        sink.wait("status", "connected", count=2)
        sink.wait("seen", "04A2B3C4", count=2)
        gone = sink.count("gone")
        drv.remove()
        sink.wait("gone", count=gone + 1)
        assert drv.led(0, 0, 255)
    finally:
        stop.set()
        thread.join(timeout=WAIT)
    assert not thread.is_alive()
    assert not drv.link.parent.exists()  # its temporary directory is cleaned up


def test_an_unplugged_reader_leaves_no_link_into_a_pty_someone_else_gets_next(rig):
    """udev removes /dev/klick-reader when the reader goes; the simulator must do the same.

    A link left pointing at /dev/pts/N after the unplug led the driver, on its next try, into
    whatever the kernel handed pty number N to next: another process's simulator (another test
    run) or a terminal. The driver "connected" to that stranger and stayed there, deaf to the
    reader plugged in behind the link. The kernel hands out the lowest free number, so the
    stranger here usually gets exactly the number the unplugged reader had.
    """
    attempts = threading.Condition()
    tries = [0]
    real_open = rig.driver._open

    def counting_open():
        with attempts:
            tries[0] += 1
            attempts.notify_all()
        return real_open()

    rig.driver._open = counting_open
    sim = rig.plug()
    rig.start()
    rig.sink.wait("status", "connected")
    sim.close()
    assert not os.path.lexists(rig.link)
    rig.sink.wait("status", "lost")
    stranger = Simulator().start()  # another program's pty; nothing points at it
    try:
        with attempts:  # two tries at the link while the stranger's pty exists
            after = tries[0]
            attempts.wait_for(lambda: tries[0] >= after + 2 or rig.driver.connected, WAIT)
        assert stranger.received == [], "the driver opened another program's pty and talked to it"
        assert not rig.driver.connected
        rig.plug(card=b"\x0c\x0d")
        rig.sink.wait("seen", "0C0D")
        assert rig.sink.count("status", "connected") == 2
        assert stranger.received == []
    finally:
        stranger.close()


def test_closing_an_old_simulator_leaves_a_newer_ones_link_alone(tmp_path):
    link = tmp_path / "klick-reader"
    with Simulator(link=link) as old:
        with Simulator(link=link) as new:
            old.close()
            assert os.readlink(link) == new.path
        assert not os.path.lexists(link)


def _sent(actions: list) -> list:
    return [m for a in actions if isinstance(a, p.Write) for _, m in p.Decoder().feed(a.frame)]


def test_a_handshake_whose_hello_is_lost_is_not_kept_alive_by_heartbeats_forever():
    """Pure session, injected clock: IDENTIFY and its three resends go unanswered, the reader
    keeps sending heartbeats. The host asks again, and if HELLO still never comes the session
    ends (the driver then reopens the port), instead of waiting in the handshake for ever."""
    s = p.HostSession()
    assert _sent(s.start(0.0)) == [p.Identify()]
    resent = [m for t in (0.1, 0.2, 0.3, 0.4, 0.5) for m in _sent(s.tick(t))]
    assert resent == [p.Identify()] * 3
    again = _sent(s.receive(p.Heartbeat(0), 1.0))  # a live reader that missed the question
    assert again == [p.Identify()]
    ended: list = []
    step = 20  # 50 ms steps from 1 s on, a heartbeat every second, for up to 30 s
    while not ended and step < 600:
        step += 1
        now = step * 0.05
        acts = s.tick(now) + (s.receive(p.Heartbeat(0), now) if step % 20 == 0 else [])
        ended = [a for a in acts if isinstance(a, p.Down)]
    assert ended == [p.Down(p.NOT_ANSWERING)]
    assert now <= p.HEARTBEAT_TIMEOUT + 0.01  # counted from the first IDENTIFY, not the last beat
