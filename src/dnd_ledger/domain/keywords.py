"""Keyword normalisation and classification of inbound message bodies.

The body is normalised (Unicode NFKC, trimmed, case-folded, surrounding
punctuation, symbols and whitespace removed, inner whitespace collapsed) and
then compared whole against the keyword sets. A longer message that merely
contains an opt-out word is a *suspected* revocation, for a person to review.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from dnd_ledger.domain.values import InboundClass

_INNER_SPACE = re.compile(r"\s+")


def _is_edge_char(ch: str) -> bool:
    # Punctuation (P*), separators (Z*), symbols such as emoji (S*) and
    # control/format characters (C*) around a keyword do not change its meaning.
    return unicodedata.category(ch)[0] in "PZSC"


def normalise(body: str) -> str:
    text = unicodedata.normalize("NFKC", body).strip().casefold()
    start, end = 0, len(text)
    while start < end and _is_edge_char(text[start]):
        start += 1
    while end > start and _is_edge_char(text[end - 1]):
        end -= 1
    return _INNER_SPACE.sub(" ", text[start:end])


def phrase_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """A regex finding any of ``words`` as whole words inside normalised text."""
    alternatives = sorted(
        {re.escape(normalise(w)).replace(r"\ ", r"\s+") for w in words if normalise(w)},
        key=len,
        reverse=True,
    )
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def classify(
    body: str,
    opt_out: frozenset[str],
    opt_in: frozenset[str],
    review: re.Pattern[str] | None,
) -> InboundClass:
    """Classify a message body against normalised keyword sets."""
    text = normalise(body)
    if text in opt_out:
        return InboundClass.OPT_OUT
    if text in opt_in:
        return InboundClass.OPT_IN
    if review is not None and review.search(text):
        return InboundClass.SUSPECTED_REVOCATION
    return InboundClass.MESSAGE
