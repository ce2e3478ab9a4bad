import json

import pytest

from ollama_proxy.ledger import AnswerText, RequestRecord, hold_slot
from ollama_proxy.observability.accounting import (
    count_body,
    estimate_answer,
    keep_openai_text,
    note_answer,
    note_arrival,
    note_cache_estimate,
    prompt_estimate,
    tap_chunks,
    tap_ndjson,
    tap_sse,
)


def _record() -> RequestRecord:
    return RequestRecord(request_id="r", method="POST", path="/api/chat", client="", started=0.0)


def _lines(*objects) -> bytes:
    return b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in objects)


CHAT = [
    {"message": {"role": "assistant", "thinking": "hm"}, "done": False},
    {"message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"message": {"role": "assistant", "content": "lo"}, "done": False},
    {"message": {"role": "assistant", "content": ""}, "done": True, "prompt_eval_count": 7, "eval_count": 5},
]


@pytest.mark.parametrize("name, chunks, prompt, completion", [
    ("finished: the done chunk's exact counts win", CHAT, 7, 5),
    ("left half-way: one token a generated chunk", CHAT[:2], None, 2),
    ("no chunk at all", [], None, None),
    ("generate stream", [{"response": "a", "done": False}, {"response": "", "done": True,
                                                            "prompt_eval_count": 3, "eval_count": 9}], 3, 9),
    ("a tool call counts as generated", [{"message": {"tool_calls": [{"function": {"name": "f"}}]},
                                          "done": False}], None, 1),
    ("a chunk with nothing generated does not count", [{"message": {"role": "assistant", "content": ""},
                                                        "done": False}], None, None),
])
def test_tap_chunks(name, chunks, prompt, completion):
    record = _record()
    assert list(tap_chunks(iter(chunks), record)) == chunks
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, completion), name


def test_side_by_side_streams_add_up_and_each_provisional_count_is_replaced():
    record = _record()
    first, second = tap_chunks(iter(CHAT), record), tap_chunks(iter(CHAT[:3]), record)
    next(first), next(second), next(second)
    assert record.completion_tokens == 3
    list(first)
    assert record.completion_tokens == 5 + 2 and record.prompt_tokens == 7


def test_first_token_time_is_the_first_generated_chunk():
    record = _record()
    taps = tap_chunks(iter([{"message": {"content": ""}, "done": False}] + CHAT), record)
    next(taps)
    assert record.first_token is None
    next(taps)
    assert record.first_token is not None and record.ttft_ms > 0


def test_an_answer_read_whole_in_one_piece_still_has_a_first_token_time():
    record = _record()
    list(tap_ndjson(iter([_lines(*CHAT)]), record))
    assert record.first_token is not None and record.completion_tokens == 5


@pytest.mark.parametrize("split", [1, 3, 7, 40, 10_000])
def test_tap_ndjson_counts_lines_split_anywhere_and_reads_the_done_line(split):
    data = _lines(*CHAT)
    pieces = [data[i:i + split] for i in range(0, len(data), split)]
    record = _record()
    assert b"".join(tap_ndjson(iter(pieces), record)) == data
    assert (record.prompt_tokens, record.completion_tokens) == (7, 5)
    assert record.first_token is not None  # also when the text and the done line came in one read


def test_tap_ndjson_left_half_way_counts_complete_lines():
    data = _lines(*CHAT[:3])
    record = _record()
    list(tap_ndjson(iter([data, b'{"message":{"content":"par']), record))
    assert record.completion_tokens == 3 and record.prompt_tokens is None


def test_tap_ndjson_survives_a_done_line_that_is_not_json():
    record = _record()
    list(tap_ndjson(iter([_lines(*CHAT[:2]), b'{"done":true,broken\n']), record))
    assert record.completion_tokens == 3  # counted as lines, not trusted as counts


@pytest.mark.parametrize("body, prompt, completion", [
    (json.dumps({"response": "hi", "done": True, "prompt_eval_count": 4, "eval_count": 2}).encode(), 4, 2),
    (json.dumps({"embeddings": [[0.1]], "prompt_eval_count": 6}).encode(), 6, None),  # /api/embed
    (json.dumps({"models": []}).encode(), None, None),
    (b"not json eval_count", None, None),
    (b'["eval_count"]', None, None),
])
def test_count_body(body, prompt, completion):
    record = _record()
    count_body(body, record)
    assert (record.prompt_tokens, record.completion_tokens) == (prompt, completion)


def test_note_answer_counts_embeddings_prompt_and_ignores_non_integers():
    record = _record()
    note_answer(record, {"prompt_eval_count": 6})
    note_answer(record, {"prompt_eval_count": True, "eval_count": "9"})
    assert (record.prompt_tokens, record.completion_tokens) == (6, None)


@pytest.mark.parametrize("body, first_token", [
    (json.dumps({"message": {"content": "hi"}, "done": True, "prompt_eval_count": 4, "eval_count": 2}).encode(),
     True),  # a chat read whole (stream: false): its first token came with the rest
    (json.dumps({"response": "hi", "done": True, "eval_count": 2}).encode(), True),
    (json.dumps({"response": "", "done": True, "eval_count": 0}).encode(), False),  # nothing generated
    (json.dumps({"embeddings": [[0.1]], "prompt_eval_count": 6}).encode(), False),  # no generation
    (b"not json eval_count", False),
])
def test_a_whole_answer_has_its_first_token_when_it_arrived(body, first_token):
    record = _record()
    count_body(body, record)
    assert (record.first_token is not None) is first_token
    if first_token:
        assert record.ttft_ms > 0


def test_arrival_never_moves_a_first_token_seen_before():
    record = _record()
    record.first_token = 1.5
    note_arrival(record, True)
    assert record.first_token == 1.5
    note_arrival(None, True)  # no record: nothing to note


@pytest.mark.parametrize("pieces, first", [
    ([b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
      b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'], 1),
    ([b'data: {"choices":[{"delta":{"reasoning_content":"hm"}}]}\n\n'], 0),
    ([b'data: {"choices":[{"delta":{"content":null}}]}\n\n',
      b'data: {"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\\"a"}}]}}]}\n\n'], 1),
    ([b'data: {"choices":[],"usage":{"completion_tokens":3}}\n\n', b"data: [DONE]\n\n"], None),
])
def test_an_openai_stream_notes_its_first_piece_of_generated_text(pieces, first):
    record, seen = _record(), []
    for _ in tap_sse(iter(pieces), record):
        seen.append(record.first_token is not None)
    assert seen == [first is not None and i >= first for i in range(len(pieces))]


def test_the_prompt_tokens_ollama_read_from_cache_are_what_it_says_and_unknown_when_it_says_nothing():
    record = _record()
    list(tap_chunks(CHAT[:2], record))
    assert record.cached_tokens is None  # no final chunk yet
    list(tap_chunks([{**CHAT[-1], "prompt_eval_count": 4300, "prompt_eval_cached_count": 3990}], record))
    assert (record.prompt_tokens, record.cached_tokens) == (4300, 3990)
    before = _record()
    list(tap_chunks([{**CHAT[-1], "prompt_eval_count": 4300}], before))  # an Ollama before 0.33
    assert (before.prompt_tokens, before.cached_tokens) == (4300, None)


@pytest.mark.parametrize("estimates, noted", [
    pytest.param([], None, id="none made"),
    pytest.param([None], None, id="a grant without one"),
    pytest.param([0], 0, id="nothing expected from cache"),
    pytest.param([3900, 100], 4000, id="side by side answers, added up"),
    pytest.param([True, "3900"], None, id="not a count"),
])
def test_the_schedulers_estimate_of_the_cached_prompt_is_noted_apart_from_ollamas_figure(estimates, noted):
    record = _record()
    for estimate in estimates:
        note_cache_estimate(record, estimate)
    assert (record.cached_tokens_estimated, record.cached_tokens) == (noted, None)


def test_side_by_side_answers_add_up_what_each_read_from_cache():
    record = _record()
    count_body(json.dumps({**CHAT[-1], "prompt_eval_count": 4300, "prompt_eval_cached_count": 4000}).encode(), record)
    count_body(json.dumps({**CHAT[-1], "prompt_eval_count": 4300, "prompt_eval_cached_count": 10}).encode(), record)
    assert (record.prompt_tokens, record.cached_tokens) == (8600, 4010)


def _keeping(limit: int = 1000) -> RequestRecord:
    record = _record()
    record.answer = AnswerText(limit)
    return record


def test_side_by_side_streams_keep_each_choices_text_apart_and_a_record_not_asked_keeps_none():
    record, quiet = _keeping(), _record()
    first = tap_chunks(iter(CHAT), record, 0)
    second = tap_chunks(iter([{"response": "Other", "done": False}, {"response": "!", "done": True}]), record, 1)
    for _ in zip(second, first, strict=False):  # interleaved, as side-by-side streams arrive
        pass
    list(first)
    list(tap_chunks(iter(CHAT), quiet))
    assert record.answer.text() == "HelloOther!" and quiet.answer is None


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_a_native_stream_keeps_its_text_however_its_lines_are_split(split):
    record, data = _keeping(), _lines(*CHAT)
    pieces = [data[i:i + split] for i in range(0, len(data), split)]
    assert b"".join(tap_ndjson(iter(pieces), record)) == data
    assert record.answer.text() == "Hello" and record.completion_tokens == 5


def test_a_native_answer_read_whole_keeps_its_text():
    record = _keeping()
    count_body(json.dumps({"response": "whole", "done": True, "eval_count": 1}).encode(), record)
    count_body(b'{"error": "model not found"}', _keeping())
    assert record.answer.text() == "whole"


def test_an_openai_stream_keeps_each_choices_text_and_leaves_done_and_usage_out():
    record = _keeping()
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
              {"choices": [{"index": 1, "delta": {"content": "B"}}]},
              {"choices": [{"index": 0, "delta": {"content": "A1"}}]},
              {"choices": [{"index": 0, "delta": {"content": "A2"}}]},
              {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 3}}]
    data = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    pieces = [data[i:i + 9] for i in range(0, len(data), 9)]
    assert b"".join(tap_sse(iter(pieces), record)) == data
    keep_openai_text(record, json.dumps({"choices": [{"index": 2, "message": {"content": "C"}}]}).encode())
    assert record.answer.text() == "A1A2BC"


def test_text_past_the_limit_is_left_out_and_the_answer_says_it_is_not_whole():
    record = _keeping(limit=4)
    list(tap_chunks(iter(CHAT), record))
    assert (record.answer.text(), record.answer.whole) == ("Hel", False)


def test_a_stream_cut_before_its_end_leaves_its_hold_to_the_proxys_measure_and_a_done_one_to_ollamas():
    cut, done = _record(), _record()
    cut_hold, done_hold = hold_slot(cut, lambda: 9), hold_slot(done, lambda: 9)
    list(tap_chunks([{"message": {"content": "a"}}, {"message": {"content": "b"}}], cut, hold=cut_hold))
    list(tap_ndjson([b'{"response":"a"}\n{"done":true,"prompt_eval_count":3,"eval_count":1,"total_duration":5}\n'],
                    done, done_hold))
    cut_hold.end()
    done_hold.end()
    assert (cut.prompt_tokens, cut.completion_tokens, cut.measured) == (9, 2, True) and cut.gpu_seconds >= 0
    assert (done.prompt_tokens, done.completion_tokens, done.gpu_seconds, done.measured) == (3, 1, 5e-9, False)


@pytest.mark.parametrize(("path", "body", "tokens"), [
    ("/api/embed", {"input": ["one two", "three"]}, 2 + 2),  # four characters a token, each text rounded up
    ("/api/embeddings", {"prompt": "one two three"}, 4),
    ("/api/chat", {"messages": [{"role": "user", "content": "x" * 40}]}, 10 + 10),  # its role, the marks
    ("/api/generate", {"prompt": "x"}, 4 + 1 + 4),  # the template's marks, then the block
    ("/api/chat", {"messages": []}, 0),  # it only loads the model
    ("/api/embed", {"input": 7}, 0),
])
def test_prompt_estimate(path, body, tokens):
    assert prompt_estimate(path, body) == tokens


@pytest.mark.parametrize(("body", "tokens"), [(b'{"text":"twelve chars"}', 3), (b"plain text!", 3), (b"", None)])
def test_an_answer_ollama_does_not_count_is_estimated_from_its_text(body, tokens):
    record = _record()
    estimate_answer(record, body)
    assert (record.completion_tokens, record.measured) == (tokens, tokens is not None)
