"""CSV downloads that open safely in a spreadsheet program.

A cell whose text starts with ``=``, ``+``, ``-`` or ``@`` is run as a formula
by Excel, LibreOffice and Google Sheets, and so is one starting with a tab or a
carriage return (OWASP, "CSV Injection"): a patient, product or lot named
``=HYPERLINK(...)`` must reach the spreadsheet as text. defusedcsv covers the
first four and ``|``/``%`` but not the tab and carriage return, hence these few
lines of our own; every CSV the clinic writes goes through `csv_writer`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def spreadsheet_cell(value: object) -> str:
    """`value` as the text of a CSV cell, with a single quote before a text
    that a spreadsheet would take for a formula; None is an empty cell."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class SafeWriter:
    """`csv.writer` whose every cell goes through `spreadsheet_cell`."""

    def __init__(self, target: _Writable) -> None:
        self._writer = csv.writer(target)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([spreadsheet_cell(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(target: _Writable) -> SafeWriter:
    """A CSV writer onto `target` (a file or an HttpResponse) that defuses
    formulas in every cell."""
    return SafeWriter(target)
