"""What an adapter hands back when a payload yields no command.

A well-formed webhook that carries no consent signal (a delivery receipt, an
email open) is not an error: providers must get a 2xx for it, and a backfill run
counts it. It comes back as :class:`Ignored` with a reason a person can read.
:class:`ParseError` is the backfill's record of a line it could not use; it is a
value, not an exception, so one bad line never stops the lines after it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ignored:
    """A valid payload with no consent signal; ``reason`` says why it is ignored."""

    reason: str


@dataclass(frozen=True)
class ParseError:
    """A backfill line (or item) that could not be turned into a command."""

    message: str
