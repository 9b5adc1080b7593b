"""check_command: every string of a command is checked, and the first bad field is named
(its one-pattern fast path must never let a bad character through)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.textcheck import check_command


@dataclass(frozen=True)
class Sample:
    location_id: str = "loc-1"
    phones: tuple[str, ...] = ("+14155550100", "+14155550101")
    reason: str | None = "line one\nline two\ttabbed"
    body: str = "STOP"
    count: int = 3
    actor: str = "alice"


BAD = ["\x00", "\x1b", "\x07", "\x7f", "\x9b", "\u202e", "\u2066", "\ud800"]


def test_a_clean_command_passes() -> None:
    check_command(Sample())


@pytest.mark.parametrize("ch", BAD)
@pytest.mark.parametrize("field", ["location_id", "phones", "reason", "actor"])
def test_each_bad_character_in_each_field_is_refused_naming_the_field(ch: str, field: str) -> None:
    value: object = ("+14155550100", f"+1415{ch}5550101") if field == "phones" else f"a{ch}b"
    with pytest.raises(InvalidInput) as e:
        check_command(Sample(**{field: value}))  # type: ignore[arg-type]
    assert str(e.value).startswith(f"{field} ")


@pytest.mark.parametrize("ch", ["\n", "\t"])
def test_newline_and_tab_are_text_but_not_identifiers(ch: str) -> None:
    check_command(Sample(reason=f"a{ch}b"))
    with pytest.raises(InvalidInput, match=r"^actor "):
        check_command(Sample(actor=f"a{ch}b"))


def test_a_cleaned_field_is_not_refused() -> None:
    check_command(Sample(body="ST\x1bOP\u202e"))


def test_the_first_bad_field_in_declaration_order_is_named() -> None:
    with pytest.raises(InvalidInput, match=r"^location_id "):
        check_command(Sample(location_id="x\x00", reason="y\x00", actor="z\x00"))
    with pytest.raises(InvalidInput, match=r"^reason "):
        check_command(Sample(reason="y\x00", actor="z\x00"))
