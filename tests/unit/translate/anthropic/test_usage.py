"""The input tokens Anthropic answers report: counted, estimated and corrected, scaled to report_context."""

from __future__ import annotations

import pytest

from ollama_proxy.translate.anthropic._common import token_usage
from ollama_proxy.translate.anthropic.answer import to_anthropic_message
from ollama_proxy.translate.anthropic.stream import MessagesStreamConverter
from ollama_proxy.translate.anthropic.tokens import Estimate
from ollama_proxy.translate.anthropic.usage import InputUsage, context_scale, requested_context
from tests.unit.translate.anthropic.test_stream import chunk, end, start, text_block
from tests.unit.translate.new_ids import counter_ids

DONE = {"model": "qwen3", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
        "prompt_eval_count": 10, "eval_count": 5}


@pytest.mark.parametrize(("report_context", "num_ctx", "scale"), [
    pytest.param(None, 8192, 1.0, id="off"),
    pytest.param(200000, None, 1.0, id="no num_ctx: nothing to scale by"),
    pytest.param(200000, True, 1.0, id="num_ctx not a number"),
    pytest.param(200000, 0, 1.0, id="num_ctx zero"),
    pytest.param(200000, 8000, 25.0, id="a small context looks as full as it is"),
    pytest.param(100000, 200000, 0.5, id="a larger context than the client assumes"),
])
def test_context_scale(report_context, num_ctx, scale):
    assert context_scale(report_context, num_ctx) == scale


@pytest.mark.parametrize(("body", "options"), [
    pytest.param({}, {}, id="none asked"),
    pytest.param({"num_ctx": 4096}, {"num_ctx": 4096}, id="at the top"),
    pytest.param({"options": {"num_ctx": 2048, "temperature": 1}}, {"num_ctx": 2048}, id="in options"),
    pytest.param({"num_ctx": 4096, "options": {"num_ctx": 2048}}, {"num_ctx": 4096}, id="the top one wins"),
])
def test_requested_context_reads_num_ctx_as_the_translation_does(body, options):
    assert requested_context(body) == options


@pytest.mark.parametrize(("usage", "estimated", "counted", "reported"), [
    pytest.param(InputUsage(Estimate(99.5)), 100, 120, 120, id="the count as it is"),
    pytest.param(InputUsage(Estimate(100), ratio=1.2), 120, None, 120, id="no count: the corrected estimate"),
    pytest.param(InputUsage(Estimate(100), ratio=1.2), 120, 0, 120, id="a count of 0 is none"),
    pytest.param(InputUsage(Estimate(100, images=1), ratio=0.5), 1650, 300, 300, id="images are not corrected"),
    pytest.param(InputUsage(Estimate(100), ratio=1.5, scale=25.0), 3750, 130, 3250, id="scaled"),
])
def test_estimated_and_reported(usage, estimated, counted, reported):
    assert usage.estimated() == estimated
    assert usage.reported(counted) == reported


def test_a_whole_message_reports_the_count_scaled_and_teaches_it():
    taught = []
    usage = InputUsage(Estimate(100), ratio=1.1, scale=2.0, learn=taught.append)
    message = to_anthropic_message(DONE, message_id="msg_1", model="claude-x", new_id=counter_ids())
    reported = usage.message(message, DONE)
    assert reported["usage"] == {"input_tokens": 20, "output_tokens": 5}
    assert message["usage"] == {"input_tokens": 10, "output_tokens": 5}  # the converter's own is not changed
    assert taught == [10]


def test_a_stream_starts_with_the_estimate_and_ends_with_the_count():
    taught = []
    usage = InputUsage(Estimate(40), ratio=1.5, learn=taught.append)
    converter = usage.stream(MessagesStreamConverter("msg_1", "claude-x", new_id=counter_ids()))
    events = converter.process(chunk("Hi")) + converter.process(DONE)
    assert events == [start(input_tokens=60), *text_block(0, "Hi"), *end(input_tokens=10)]
    assert taught == [10] and converter.finished
    assert converter.process(DONE) == [] and taught == [10]  # nothing after the end, and nothing learnt twice


def test_a_scaled_stream_scales_both_figures():
    usage = InputUsage(Estimate(40), scale=10.0)
    converter = usage.stream(MessagesStreamConverter("msg_1", "claude-x", new_id=counter_ids()))
    events = converter.ping() + converter.process(DONE)
    assert events[0] == start(input_tokens=400)
    assert events[1] == ("ping", {"type": "ping"})
    assert events[-2:] == end(input_tokens=100, output_tokens=5)


def test_errors_and_an_early_end_pass_through():
    converter = InputUsage(Estimate(40)).stream(MessagesStreamConverter("msg_1", "claude-x", new_id=counter_ids()))
    assert converter.close() == [("error", {"type": "error", "error": {
        "type": "api_error", "message": "the upstream closed the stream before the response was complete"}})]
    assert converter.finished and converter.fail("late") == []


CACHED = {**DONE, "prompt_eval_count": 4300, "prompt_eval_cached_count": 3990}

# Ollama's answer in, Anthropic's input figures out: cache_read_input_tokens only where Ollama said how many.
CACHE_CASES = [
    pytest.param({"prompt_eval_count": 4300, "eval_count": 5}, {"input_tokens": 4300},
                 id="Ollama 0.33: not told, every prompt token is input, nothing said of the cache"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": 3990, "eval_count": 5},
                 {"input_tokens": 310, "cache_read_input_tokens": 3990}, id="an Ollama that tells"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": 0, "eval_count": 5},
                 {"input_tokens": 4300, "cache_read_input_tokens": 0}, id="none cached, told"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": None, "eval_count": 5},
                 {"input_tokens": 4300}, id="null: nothing said"),
    pytest.param({"prompt_eval_count": 4300, "prompt_eval_cached_count": "3990", "eval_count": 5},
                 {"input_tokens": 4300}, id="not a count: nothing said"),
    pytest.param({"prompt_eval_count": 10, "prompt_eval_cached_count": 12, "eval_count": 5},
                 {"input_tokens": 0, "cache_read_input_tokens": 10}, id="more cached than counted: held to the count"),
]


@pytest.mark.parametrize(("answer", "figures"), CACHE_CASES)
def test_the_converters_usage_says_what_came_from_cache_only_where_ollama_does(answer, figures):
    assert token_usage(answer) == {**figures, "output_tokens": 5}


@pytest.mark.parametrize(("answer", "figures"), CACHE_CASES)
def test_the_reported_input_says_what_came_from_cache_only_where_ollama_does(answer, figures):
    assert InputUsage(Estimate(40)).input_figures(answer) == figures


def test_a_whole_message_parts_its_input_into_what_was_read_and_what_came_from_cache():
    usage = InputUsage(Estimate(100), scale=2.0)
    message = to_anthropic_message(CACHED, message_id="msg_1", model="claude-x", new_id=counter_ids())
    assert message["usage"] == {"input_tokens": 310, "cache_read_input_tokens": 3990, "output_tokens": 5}
    assert usage.message(message, CACHED)["usage"] == {"input_tokens": 620, "cache_read_input_tokens": 7980,
                                                       "output_tokens": 5}  # scaled alike: the context they fill


def test_a_stream_tells_what_came_from_cache_at_its_end_and_says_nothing_of_it_before_ollama_does():
    converter = InputUsage(Estimate(40)).stream(MessagesStreamConverter("msg_1", "claude-x", new_id=counter_ids()))
    events = converter.process(chunk("Hi")) + converter.process(CACHED)
    assert events[0] == start(input_tokens=40)
    assert events[-2][1]["usage"] == {"input_tokens": 310, "cache_read_input_tokens": 3990, "output_tokens": 5}
    older = InputUsage(Estimate(40)).stream(MessagesStreamConverter("msg_1", "claude-x", new_id=counter_ids()))
    assert older.process(DONE)[-2][1]["usage"] == {"input_tokens": 10, "output_tokens": 5}  # before 0.33
