"""An answer's cache figures withheld: in a chunk, a whole answer, and a stream split anywhere."""

from __future__ import annotations

import json

from ollama_proxy.observability.cache_figures import withheld, withheld_line, withheld_ndjson

FINAL = {"model": "m", "done": True, "prompt_eval_count": 9, "prompt_eval_cached_count": 7,
         "prompt_eval_duration": 5, "eval_count": 2}


def test_a_chunk_loses_its_cached_count_only():
    assert withheld(FINAL) == {k: v for k, v in FINAL.items() if k != "prompt_eval_cached_count"}
    chunk = {"message": {"content": "hi"}, "done": False}
    assert withheld(chunk) is chunk


def test_a_whole_answer_and_other_bytes():
    assert json.loads(withheld_line(json.dumps(FINAL).encode())) == withheld(FINAL)
    assert withheld_line(b"not json prompt_eval_cached_count") == b"not json prompt_eval_cached_count"
    assert withheld_line(b'{"done":false}\n') == b'{"done":false}\n'


def test_a_stream_split_anywhere_keeps_its_lines_and_loses_the_figure():
    stream = b'{"message":{"content":"h\xc3\xa9"},"done":false}\n' + json.dumps(FINAL).encode() + b"\n"
    for cut in range(1, len(stream)):
        out = b"".join(withheld_ndjson([stream[:cut], stream[cut:]]))
        lines = [json.loads(line) for line in out.splitlines()]
        assert lines == [{"message": {"content": "hé"}, "done": False}, withheld(FINAL)], cut


def test_a_last_line_without_its_end_is_passed_on():
    assert json.loads(b"".join(withheld_ndjson([json.dumps(FINAL).encode()]))) == withheld(FINAL)
