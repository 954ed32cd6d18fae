# Klick reader firmware for a Raspberry Pi Pico (RP2040) with an MFRC522 card reader.
#
# MicroPython runs this file at boot. It speaks the Klick wire protocol, version 2 (PROTOCOL.md),
# to the host over the Pico's USB serial port: HELLO at start, a HEARTBEAT four times a second,
# CARD_IN_EVENT / CARD_OUT_EVENT with the event counter, kept and resent until the host's
# EVENT_ACK, and it obeys IDENTIFY, LED, BEEP and STATUS with an ACK.
#
# The logic (Firmware) takes its reader, LED, buzzer, clock and output as arguments, and the
# port takes its streams, so the same code runs under CPython on the host with fake hardware:
# that is how tests/test_firmware.py drives the real bridge with it through a pty.
#
# Wiring and flashing: README.md in this folder.

import klick_proto as P

try:
    from time import sleep_ms, ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython (the host's tests): plain monotonic milliseconds
    import time as _time

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_add(t, delta):
        return t + delta

    def ticks_diff(a, b):
        return a - b

    def sleep_ms(ms):
        _time.sleep(ms / 1000)


FIRMWARE = "pico-mfrc522-2.0"
KIND = "slot"  # this reader senses removal: a card stays in the slot while it is used

POLL_MS = 50  # look for a card twenty times a second
MISSES = 3  # a card missing from three polls in a row (150 ms) has been taken out
HEARTBEAT_MS = 250  # four a second: on a noisy line the host still hears one well within 3 s
RING = 8  # card events kept until the host acknowledges them (the protocol's EVENT_RING)
RESEND_MS = 100  # unacknowledged events go again this often...
RESEND_ROUNDS = 30  # ...at most this many times in a row without an EVENT_ACK (nobody listening)
NACK_MIN_MS = 50  # an EVENT_ACK that acknowledges nothing new resends at once, but not faster
ERROR_REPEAT_MS = 10000  # the same complaint at most every ten seconds
MAX_BEEP_MS = 5000  # a stuck host must not make the tablet shriek for a minute
WATCHDOG_MS = 8000  # the RP2040's maximum: a hung SPI bus resets the board

# Pins (GPxx numbers). Change them here if your board is wired differently.
SPI_ID = 0
PIN_SCK, PIN_MOSI, PIN_MISO, PIN_CS, PIN_RST = 18, 19, 16, 17, 20
RGB_PINS = (13, 14, 15)  # red, green, blue of a common-cathode RGB LED; None: onboard LED
BUZZER_PIN = 21  # a passive piezo buzzer; None: no buzzer
MAINTENANCE_PIN = 22  # jumper this to GND to keep the REPL free for mpremote / Thonny
BUZZER_HZ = 2000


class Firmware:
    """The reader's behaviour: polls, events, heartbeats and host commands; no I/O of its own."""

    def __init__(self, reader, write, led=None, buzzer=None, clock=ticks_ms, kind=KIND,
                 firmware=FIRMWARE):
        self.reader = reader
        self.write = write
        self.led = led
        self.buzzer = buzzer
        self.clock = clock
        self.kind = kind
        self.firmware = firmware
        self.decoder = P.Decoder()
        self.seq = 0
        self.counter = 0
        self.card = None  # UID bytes of the card the host was told about
        self.missed = 0
        self.next_poll = 0
        self.next_beat = 0
        self.ring = []  # (counter, uid or None, ticks) of card events not yet acknowledged
        self.rounds = 0  # resend rounds left before going quiet
        self.next_resend = 0
        self.last_resend = 0
        self._bad_frames = 0
        self._last_error = None  # (code, ticks)

    # -- out ------------------------------------------------------------------------------

    def send(self, payload):
        self.write(P.frame(self.seq, payload))
        self.seq = (self.seq + 1) & 0x0F

    def complain(self, code, text):
        """An ERROR frame for the bridge log, but never a flood of the same one."""
        now = self.clock()
        last = self._last_error
        if last is not None and last[0] == code and ticks_diff(now, last[1]) < ERROR_REPEAT_MS:
            return
        self._last_error = (code, now)
        self.send(P.error(code, text))

    def _status_answer(self):
        if self.card is None:
            return P.card_removed(self.counter)
        return P.card_present(self.counter, self.card)

    # -- life -----------------------------------------------------------------------------

    def boot(self):
        now = self.clock()
        self.send(P.hello(self.firmware, self.kind))
        self.next_poll = now
        self.next_beat = ticks_add(now, HEARTBEAT_MS)

    def step(self):
        """Do what is due now; return the milliseconds until something is due again."""
        now = self.clock()
        if ticks_diff(now, self.next_poll) >= 0:
            self.next_poll = ticks_add(now, POLL_MS)
            self.poll()
        if ticks_diff(now, self.next_beat) >= 0:
            self.next_beat = ticks_add(self.next_beat, HEARTBEAT_MS)
            if ticks_diff(self.next_beat, now) <= 0:  # we were stalled: do not send a burst
                self.next_beat = ticks_add(now, HEARTBEAT_MS)
            self.send(P.heartbeat(self.counter))
        resending = self.ring and self.rounds > 0
        if resending and ticks_diff(now, self.next_resend) >= 0:
            self.resend(now)
        if self.buzzer is not None:
            self.buzzer.tick(now)
        wait = min(ticks_diff(self.next_poll, now), ticks_diff(self.next_beat, now))
        if resending:
            wait = min(wait, ticks_diff(self.next_resend, now))
        return max(0, wait)

    def poll(self):
        try:
            uid = self.reader.read_uid()
        except OSError as exc:
            uid = None
            self.complain(P.ERR_NO_CHIP, "card chip: %s" % (exc,))
        if uid:
            self.missed = 0
            if uid != self.card:
                if self.card is not None:  # swapped without a gap we could see
                    self._event(None)
                self._event(uid)
        elif self.card is not None:
            self.missed += 1
            if self.missed >= MISSES:
                self._event(None)

    def _event(self, uid):
        """A card event: sent now, and kept (the last RING of them) until the host acknowledges it."""
        self.card = uid
        self.missed = 0
        self.counter = (self.counter + 1) & 0xFFFF
        now = self.clock()
        self.ring.append((self.counter, uid, now))
        if len(self.ring) > RING:
            self.ring.pop(0)  # the host has not acknowledged eight events: the oldest goes
        self._send_event(self.counter, uid, now, now)
        self.rounds = RESEND_ROUNDS
        self.next_resend = ticks_add(now, RESEND_MS)

    def _send_event(self, counter, uid, at, now):
        age = max(0, ticks_diff(now, at))
        if uid is None:
            self.send(P.card_out_event(counter, age))
        else:
            self.send(P.card_in_event(counter, age, uid))

    def resend(self, now):
        """Every event the host has not acknowledged, oldest first, each with its age now."""
        for counter, uid, at in self.ring:
            self._send_event(counter, uid, at, now)
        self.last_resend = now
        self.next_resend = ticks_add(now, RESEND_MS)
        self.rounds -= 1

    def event_ack(self, counter):
        """The host has every event up to ``counter``; one that acknowledges nothing new asks for the rest."""
        before = len(self.ring)
        self.ring = [e for e in self.ring if (counter - e[0]) & 0xFFFF >= 0x8000]
        if not self.ring:
            return
        self.rounds = RESEND_ROUNDS
        now = self.clock()
        if len(self.ring) == before and ticks_diff(now, self.last_resend) >= NACK_MIN_MS:
            self.resend(now)

    # -- in -------------------------------------------------------------------------------

    def feed(self, data):
        for seq, payload in self.decoder.feed(data):
            self.command(seq, payload)
        if self.decoder.errors != self._bad_frames:
            self._bad_frames = self.decoder.errors
            self.complain(P.ERR_BAD_FRAME, "bad frame from host")

    def command(self, seq, payload):
        cmd, body = payload[0], payload[1:]
        n = len(body)
        if cmd == P.IDENTIFY and n == 0:
            self.send(P.ack(seq))
            self.send(P.hello(self.firmware, self.kind))
        elif cmd == P.STATUS and n == 0:
            self.send(P.ack(seq))
            self.send(self._status_answer())
        elif cmd == P.LED and n == 3:
            self.send(P.ack(seq))
            if self.led is not None:
                self.led.set(body[0], body[1], body[2])
        elif cmd == P.BEEP and n == 2:
            self.send(P.ack(seq))
            if self.buzzer is not None:
                self.buzzer.beep((body[0] << 8) | body[1], self.clock())
        elif cmd == P.EVENT_ACK and n == 2:
            self.event_ack((body[0] << 8) | body[1])  # no ACK: it is itself an acknowledgement
        else:
            self.complain(P.ERR_UNKNOWN_COMMAND, "unknown command 0x%02X" % cmd)


# -- hardware -------------------------------------------------------------------------------


class Reader:
    """The MFRC522, set up again on the next poll after any fault, so a loose wire heals."""

    def __init__(self, make):
        self.make = make
        self.chip = None

    def read_uid(self):
        if self.chip is None:
            self.chip = self.make()  # raises OSError (ChipMissing) while nothing answers
        try:
            return self.chip.read_uid()
        except OSError:
            self.chip = None
            raise


class RgbLed:
    def __init__(self, machine, pins):
        self.pwm = []
        for n in pins:
            pwm = machine.PWM(machine.Pin(n))
            pwm.freq(1000)
            pwm.duty_u16(0)
            self.pwm.append(pwm)
        self.rgb = (0, 0, 0)

    def set(self, r, g, b):
        self.rgb = (r, g, b)
        for pwm, value in zip(self.pwm, (r, g, b)):
            pwm.duty_u16(value * 257)


class OnboardLed:
    def __init__(self, machine):
        self.pin = machine.Pin("LED", machine.Pin.OUT)
        self.rgb = (0, 0, 0)

    def set(self, r, g, b):
        self.rgb = (r, g, b)
        self.pin.value(1 if (r or g or b) else 0)


class Buzzer:
    """A passive piezo on PWM; beeps end in :meth:`tick`, so a beep never blocks the loop."""

    def __init__(self, pwm):
        self.pwm = pwm
        self.until = None
        pwm.duty_u16(0)

    def beep(self, ms, now):
        ms = min(ms, MAX_BEEP_MS)
        if ms == 0:
            self.pwm.duty_u16(0)
            self.until = None
            return
        self.pwm.freq(BUZZER_HZ)
        self.pwm.duty_u16(32768)
        self.until = ticks_add(now, ms)

    def tick(self, now):
        if self.until is not None and ticks_diff(now, self.until) >= 0:
            self.pwm.duty_u16(0)
            self.until = None


class UsbPort:
    """The USB serial line as raw bytes: ``poll_on`` is what select.poll watches (sys.stdin on
    the Pico), ``inp``/``out`` the byte streams (sys.stdin.buffer, sys.stdout.buffer)."""

    def __init__(self, select, poll_on, inp, out):
        self.inp = inp
        self.out = out
        self.poller = select.poll()
        self.poller.register(poll_on, select.POLLIN)
        self.pollin = select.POLLIN

    def read(self, timeout_ms):
        """Whatever the host sent, waiting at most ``timeout_ms`` for the first byte."""
        data = b""
        events = self.poller.poll(timeout_ms)
        while events and len(data) < P.MAX_FRAME:
            if not events[0][1] & self.pollin:
                sleep_ms(timeout_ms)  # hung up (nobody has the port open): nothing to read
                break
            try:
                b = self.inp.read(1)
            except OSError:
                break
            if not b:
                break
            data += b
            events = self.poller.poll(0)
        return data

    def write(self, data):
        try:
            self.out.write(data)
        except OSError:
            pass  # nobody is listening; a UART would drop the bytes too


def run(fw, port, wdt=None, should_stop=None):
    """The main loop: sleep in poll until a byte arrives or the next poll/heartbeat is due."""
    fw.boot()
    while should_stop is None or not should_stop():
        try:
            wait = fw.step()
            data = port.read(min(wait, 20))
            if data:
                fw.feed(data)
        except Exception as exc:  # keep serving: the host hears about it, the card still works
            fw.complain(P.ERR_INTERNAL, "%s: %s" % (type(exc).__name__, exc))
            sleep_ms(10)
        if wdt is not None:
            wdt.feed()


def maintenance_requested(machine):
    """True when the maintenance jumper is fitted, or BOOTSEL is held during the first second."""
    if machine.Pin(MAINTENANCE_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0:
        return True
    try:
        import rp2
        pressed = rp2.bootsel_button
    except (ImportError, AttributeError):
        return False
    start = ticks_ms()
    while ticks_diff(ticks_ms(), start) < 1000:
        if pressed():
            return True
        sleep_ms(20)
    return False


def build(machine):
    """The reader, LED and buzzer on the pins above."""
    import mfrc522

    Pin = machine.Pin
    spi = machine.SPI(SPI_ID, baudrate=1000000, polarity=0, phase=0,
                      sck=Pin(PIN_SCK), mosi=Pin(PIN_MOSI), miso=Pin(PIN_MISO))
    cs = Pin(PIN_CS, Pin.OUT, value=1)
    rst = Pin(PIN_RST, Pin.OUT, value=1)
    reader = Reader(lambda: mfrc522.MFRC522(spi, cs, rst))
    led = RgbLed(machine, RGB_PINS) if RGB_PINS else OnboardLed(machine)
    buzzer = Buzzer(machine.PWM(Pin(BUZZER_PIN))) if BUZZER_PIN is not None else None
    return reader, led, buzzer


def main(port=None, should_stop=None, watchdog=True):
    import machine
    import sys

    try:
        import select
    except ImportError:
        import uselect as select
    if maintenance_requested(machine):
        print("Klick firmware not started: maintenance jumper or BOOTSEL. The REPL is yours.")
        return None
    if port is None:
        try:
            import micropython
            micropython.kbd_intr(-1)  # 0x03 is an ordinary byte in our frames, not Ctrl-C
        except ImportError:
            pass
        port = UsbPort(select, sys.stdin, sys.stdin.buffer, sys.stdout.buffer)
    reader, led, buzzer = build(machine)
    fw = Firmware(reader, port.write, led, buzzer)
    wdt = machine.WDT(timeout=WATCHDOG_MS) if watchdog else None
    run(fw, port, wdt, should_stop)
    return fw


if __name__ == "__main__":
    main()
