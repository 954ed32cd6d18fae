import pytest
from hypothesis import given
from hypothesis import strategies as st

from klick.uid import UidError, normalise_uid

hex_bytes = st.binary(min_size=1, max_size=10)
separators = st.sampled_from([":", " ", "-", "", "."])


@given(hex_bytes)
def test_bytes_become_upper_hex(raw):
    assert normalise_uid(raw) == raw.hex().upper()


@given(hex_bytes, separators, st.booleans())
def test_separators_and_case_do_not_matter(raw, sep, upper):
    text = sep.join(f"{b:02x}" for b in raw)
    text = text.upper() if upper else text
    assert normalise_uid(text) == normalise_uid(raw)


@given(st.text(alphabet="0123456789abcdefABCDEF :-", min_size=1, max_size=30))
def test_idempotent(text):
    try:
        once = normalise_uid(text)
    except UidError:
        return
    assert normalise_uid(once) == once


def test_the_issue_examples_are_one_card():
    assert normalise_uid("04:a2:b3:c4") == normalise_uid("04 A2 B3 C4") == normalise_uid("04a2b3c4") == "04A2B3C4"


def test_decimal_ids_stay_strings_with_leading_zeros():
    assert normalise_uid("0012345678") == "0012345678"
    assert isinstance(normalise_uid("0012345678"), str)


@pytest.mark.parametrize("bad", ["", "   ", "04:zz", "hello", "0" * 41, b""])
def test_rejects_with_a_plain_message(bad):
    with pytest.raises(UidError) as info:
        normalise_uid(bad)
    assert "Traceback" not in str(info.value)


def test_not_text():
    with pytest.raises(UidError):
        normalise_uid(12345)  # type: ignore[arg-type]
