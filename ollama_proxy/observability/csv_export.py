"""Write rows as CSV that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``,
``-`` or ``@`` as a formula, and one that starts with a tab or a carriage return
once they have trimmed it (OWASP, "CSV Injection"). Clients name the models and
the names end up in exports: such a text cell gets a leading single quote, which
the spreadsheet reads as "text follows" and does not show. Numbers are numbers,
written as they are, a negative one included.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """Return ``value`` as a cell a spreadsheet shows as it is: text that would start a formula is quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[dict], lineterminator: str = "\r\n") -> None:
    """Write a header of ``columns``, then each row's values in that order, every text cell neutralised."""
    writer = csv.writer(out, lineterminator=lineterminator)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([neutralise(row.get(column)) for column in columns])
