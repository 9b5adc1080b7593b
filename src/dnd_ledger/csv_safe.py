"""CSV cells a spreadsheet will not run: formula injection neutralised (OWASP).

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read as a formula by Excel, LibreOffice and Google Sheets. Every CSV the project
writes passes its cells through :func:`cell`, which prefixes such a cell with a
single quote (``'=1+1`` shows as ``=1+1`` and is not evaluated), and shows control
characters escaped (``\\x1b``) so a stored one cannot reach a terminal raw.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from dnd_ledger.textcheck import escape

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """The text of one CSV cell: ``None`` is empty, a would-be formula is quoted."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return escape(text)


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A whole CSV document (``\\n`` line ends), every cell through :func:`cell`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([cell(h) for h in header])
    for row in rows:
        w.writerow([cell(v) for v in row])
    return buf.getvalue()
