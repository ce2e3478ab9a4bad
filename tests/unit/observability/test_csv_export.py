"""Cells a spreadsheet would run as formulas are written as text; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from ollama_proxy.observability.csv_export import neutralise, write_csv


@pytest.mark.parametrize("value, written", [
    pytest.param("=HYPERLINK(\"http://x\",\"click\")", "'=HYPERLINK(\"http://x\",\"click\")", id="equals"),
    pytest.param("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0", id="plus"),
    pytest.param("-2+3", "'-2+3", id="minus"),
    pytest.param("@SUM(A1:A9)", "'@SUM(A1:A9)", id="at"),
    pytest.param("\t=1+1", "'\t=1+1", id="tab"),
    pytest.param("\r=1+1", "'\r=1+1", id="carriage return"),
    pytest.param("-1", "'-1", id="text that looks like a number is still text"),
    pytest.param("llama3.2:latest", "llama3.2:latest", id="a model name"),
    pytest.param("a=b", "a=b", id="equals further in"),
    pytest.param(" =1", " =1", id="a leading space"),
    pytest.param("'=1", "'=1", id="quoted already"),
    pytest.param("", "", id="empty text"),
    pytest.param(-5, -5, id="a negative whole number"),
    pytest.param(-812.5, -812.5, id="a negative float"),
    pytest.param(0, 0, id="zero"),
    pytest.param(False, False, id="a boolean"),
    pytest.param(None, None, id="no value"),
])
def test_neutralise(value, written):
    assert neutralise(value) == written


def test_write_csv_neutralises_text_cells_in_column_order():
    out = io.StringIO()
    write_csv(out, ("model", "prompt_tokens", "duration_ms", "aborted", "key_name"),
              [{"key_name": "=evil", "model": "@m", "prompt_tokens": -3, "duration_ms": -1.5, "aborted": True,
                "ignored": "=x"}, {"model": "m"}])
    assert out.getvalue() == ("model,prompt_tokens,duration_ms,aborted,key_name\r\n"
                              "'@m,-3,-1.5,True,'=evil\r\n"
                              "m,,,,\r\n")
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[1][0] == "'@m" and rows[1][4] == "'=evil"


def test_write_csv_keeps_a_cell_with_a_separator_or_a_quote_in_one_cell():
    out = io.StringIO()
    write_csv(out, ("model",), [{"model": '=1,"2"\n3'}], lineterminator="\n")
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["model"], ['\'=1,"2"\n3']]
