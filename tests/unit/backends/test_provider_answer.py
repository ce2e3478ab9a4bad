import json

import pytest

from ollama_proxy.backends.provider_answer import OllamaAnswer, PassthroughAnswer, sse_data
from ollama_proxy.translate.ollama import fold_chunks


def test_sse_data_joins_lines_split_anywhere_and_skips_comments_and_events():
    pieces = [b": OPENROUTER PROCESSING\n\nevent: message\nda", b'ta: {"a":', b" 1}\n\ndata:[DONE]\n\n"]
    assert list(sse_data(iter(pieces))) == ['{"a": 1}', "[DONE]"]


class FakeRaw:
    """Stands in for UpstreamResponse: fixed pieces, records close and abort."""

    def __init__(self, pieces, content_type="text/event-stream"):
        self.pieces = pieces
        self.headers = {"Content-Type": content_type}
        self.status = 200
        self.waited = self.busy = 0.5
        self.closed = self.aborted = False

    def iter_bytes(self):
        yield from self.pieces

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
TRAILER = b'data: {"choices":[],"usage":' + json.dumps(USAGE).encode() + b"}\n\ndata: [DONE]\n\n"


@pytest.mark.parametrize("pieces, content_type, usage", [
    ([b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'] * 20 + [TRAILER[:30], TRAILER[30:]],
     "text/event-stream", USAGE),
    ([b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n', b"data: [DONE]\n\n"],
     "text/event-stream", None),
    ([b'{"choices":[],', b'"usage":' + json.dumps(USAGE).encode() + b"}"], "application/json", USAGE),
])
def test_passthrough_keeps_bytes_and_reads_usage(pieces, content_type, usage):
    raw = FakeRaw(pieces, content_type)
    with PassthroughAnswer(raw) as answer:
        assert answer.read() == b"".join(pieces)
        assert answer.usage == usage
    assert raw.closed


TEXT = b'data: {"choices":[{"index":0,"delta":{"content":"hi sk-secret"}}],"usage":null}\n\n'
STREAMS = {
    "the usage chunk asked for stays": (
        [TEXT, TRAILER], True, TEXT.replace(b"sk-secret", b"***") + TRAILER),
    "the usage chunk not asked for goes, its blank line stays": (
        [TEXT, TRAILER], False, TEXT.replace(b"sk-secret", b"***") + b"\ndata: [DONE]\n\n"),
    "lines split anywhere, a secret across two pieces": (
        [TEXT[:30], TEXT[30:56], TEXT[56:], TRAILER[:10], TRAILER[10:]], False,
        TEXT.replace(b"sk-secret", b"***") + b"\ndata: [DONE]\n\n"),
    "usage with choices (on the last text chunk) stays": (
        [b'data: {"choices":[{"delta":{}}], "usage": ' + json.dumps(USAGE).encode() + b"}\n\n"], False,
        b'data: {"choices":[{"delta":{}}], "usage": ' + json.dumps(USAGE).encode() + b"}\n\n"),
}


@pytest.mark.parametrize("pieces, usage_wanted, relayed", STREAMS.values(), ids=STREAMS.keys())
def test_passthrough_stream_reads_the_usage_and_shows_it_only_if_asked(pieces, usage_wanted, relayed):
    answer = PassthroughAnswer(FakeRaw(pieces), blank=lambda data: data.replace(b"sk-secret", b"***"),
                               usage_wanted=usage_wanted)
    out = list(answer.iter_bytes())
    assert b"".join(out) == relayed and all(piece.endswith(b"\n") for piece in out)
    assert answer.usage == USAGE


CHUNKS = [{"model": "m", "message": {"role": "assistant", "content": "a"}, "done": False},
          {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}]


def test_ollama_answer_streams_ndjson_or_folds_one_object():
    streamed = OllamaAnswer(iter(CHUNKS), stream=True, fold=fold_chunks)
    assert streamed.is_ndjson and streamed.headers["Content-Type"] == "application/x-ndjson"
    assert [json.loads(line) for line in streamed.read().splitlines()] == CHUNKS
    whole = OllamaAnswer(iter(CHUNKS), stream=False, fold=fold_chunks, raw=FakeRaw([]))
    assert json.loads(whole.read()) == {**CHUNKS[1], "message": {"role": "assistant", "content": "a"}}
    whole.abort()
    assert whole._raw.aborted
