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
    # Punctuation (P*), separators (Z*), symbols such as emoji and skin-tone
    # modifiers (S*), control and format characters such as the zero-width joiner
    # (C*) around a keyword do not change its meaning.
    return unicodedata.category(ch)[0] in "PZSC"


def _is_mark(ch: str) -> bool:
    # Variation selectors (U+FE0F makes an emoji of U+2764), the keycap U+20E3 and
    # other combining marks (M*): they belong to the character before them.
    return unicodedata.category(ch)[0] == "M"


def _is_edge_cluster(cluster: str) -> bool:
    """A character with its marks is an edge when the character is one, when it is a
    mark with nothing before it, or when an enclosing mark makes a symbol of it (the
    keycap emoji 1️⃣ is U+0031 U+FE0F U+20E3)."""
    base = cluster[0]
    return (
        _is_edge_char(base)
        or _is_mark(base)
        or any(unicodedata.category(ch) == "Me" for ch in cluster[1:])
    )


def normalise(body: str) -> str:
    text = unicodedata.normalize("NFKC", body).strip().casefold()
    # Split into clusters (a character and the marks after it), drop the edge
    # clusters at both ends: "STOP ❤️" is STOP, a space, U+2764 and U+FE0F.
    clusters: list[str] = []
    for ch in text:
        if clusters and _is_mark(ch) and not _is_mark(clusters[-1][0]):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    start, end = 0, len(clusters)
    while start < end and _is_edge_cluster(clusters[start]):
        start += 1
    while end > start and _is_edge_cluster(clusters[end - 1]):
        end -= 1
    return _INNER_SPACE.sub(" ", "".join(clusters[start:end]))


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
