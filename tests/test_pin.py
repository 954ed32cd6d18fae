"""The carer PIN: hashed with a salt, checked in constant time, made by `klick carer pin` on a real tty."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from klick.config import load_config
from klick.pin import ITERATIONS, check_pin, hash_pin, is_outdated, pin_problem

FAST = 1000  # iterations for property tests; the format and the check do not depend on the count

pins = st.text(alphabet="0123456789", min_size=4, max_size=12)


def test_hash_has_the_documented_format_and_a_fresh_salt():
    a, b = hash_pin("2468"), hash_pin("2468")
    scheme, rounds, salt, digest = a.split("$")
    assert scheme == "pbkdf2_sha256" and int(rounds) >= 600_000
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    assert a != b, "the same PIN must not give the same hash twice"
    assert "2468" not in a
    assert check_pin("2468", a) and check_pin("2468", b)


@settings(max_examples=60, deadline=None)
@given(pins, pins)
def test_only_the_right_pin_matches(pin, other):
    stored = hash_pin(pin, iterations=FAST)
    assert check_pin(pin, stored)
    assert check_pin(other, stored) == (other == pin)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_a_broken_hash_never_lets_anyone_in(garbage):
    assert check_pin("1234", garbage) is False
    assert check_pin("", garbage) is False


def test_malformed_hashes_are_refused():
    good = hash_pin("1234", iterations=FAST)
    scheme, rounds, salt, digest = good.split("$")
    for bad in (
        "",
        "1234",
        f"md5${rounds}${salt}${digest}",
        f"{scheme}$0${salt}${digest}",
        f"{scheme}$99999999999${salt}${digest}",
        f"{scheme}${rounds}$${digest}",
        f"{scheme}${rounds}${salt}${digest[:-2]}",
        f"{scheme}${rounds}$zz${digest}",
        f"{scheme}$-5${salt}${digest}",
        good + "$x",
    ):
        assert not check_pin("1234", bad), bad


def test_pin_rules():
    assert pin_problem("123456") is None and pin_problem("123456789012") is None
    assert "digits only" in pin_problem("12a456")
    assert "digits only" in pin_problem("١٢٣٤٥٦")  # Arabic-Indic digits: not on the tablet's pad
    assert "6 to 12" in pin_problem("1" * 13)


def test_new_pins_need_at_least_six_digits():
    assert pin_problem("1234") == "The PIN must be 6 to 12 digits long."
    assert pin_problem("12345") == "The PIN must be 6 to 12 digits long."
    assert pin_problem("123456") is None


def test_new_hashes_are_slow_and_old_hashes_still_open_the_carer_screen():
    assert ITERATIONS >= 600_000
    new = hash_pin("735914")
    assert int(new.split("$")[1]) >= 600_000 and not is_outdated(new)
    # A hash made by the Klick before this one: 200,000 rounds, a 4-digit PIN. It still works.
    old = "pbkdf2_sha256$200000$" + "00112233445566778899aabbccddeeff" + "$"
    import hashlib

    old += hashlib.pbkdf2_hmac("sha256", b"2468", bytes.fromhex("00112233445566778899aabbccddeeff"), 200_000).hex()
    assert check_pin("2468", old) and not check_pin("2469", old)
    assert is_outdated(old)
    assert not is_outdated("") and not is_outdated("garbage")


def _klick_on_a_tty(args, answers, env):
    """Run the real CLI with a pseudo-terminal as its terminal, typing ``answers`` at its prompts."""
    master, slave = os.openpty()

    def controlling_tty():  # as a login shell would: the pty is the process's own terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-c", "from klick.cli import main; main()", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    seen = b""
    sent = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
                # Click writes the prompt, then getpass turns echo off with TCSAFLUSH (dropping
                # anything typed so far) and writes one space: answer only after that space.
                prompts = seen.count(b"digits): ") + seen.count(b"again: ")
                if sent < min(prompts, len(answers)):
                    os.write(master, answers[sent].encode() + b"\r")
                    sent += 1
            elif proc.poll() is not None:
                break
        code = proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, seen.decode("utf-8", "replace")


def test_klick_carer_pin_asks_twice_hidden_and_prints_a_line_the_config_accepts(klick_home):
    code, out = _klick_on_a_tty(["carer", "pin"], ["735914", "735914"], dict(os.environ))
    assert code == 0, out
    assert "735914" not in out, "the PIN was echoed on the terminal"
    assert out.count("PIN") >= 2
    block = out[out.index("carer:") :].replace("\r\n", "\n")
    (klick_home / "klick.yaml").write_text(block)
    cfg = load_config()
    assert cfg.carer.pin_hash.startswith("pbkdf2_sha256$")
    assert check_pin("735914", cfg.carer.pin_hash)
    assert not check_pin("735915", cfg.carer.pin_hash)


def test_klick_carer_pin_refuses_mismatch_and_short(klick_home):
    code, out = _klick_on_a_tty(["carer", "pin"], ["1234", "4321"], dict(os.environ))
    assert code == 2 and "not the same" in out and "pin_hash" not in out
    code, out = _klick_on_a_tty(["carer", "pin"], ["1234", "1234"], dict(os.environ))
    assert code == 2 and "6 to 12 digits" in out and "pin_hash" not in out
    assert "Traceback" not in out
