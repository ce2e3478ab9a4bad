"""The models section's report_context, and the token_counts section."""

from __future__ import annotations

import pytest

from ollama_proxy.config import ConfigError, ModelOverride, parse_settings


def overrides(entry: dict) -> dict:
    return parse_settings({"models": {"overrides": {"llama3.2": entry}}}, environ={}).models.overrides


@pytest.mark.parametrize("entry", [
    {"defaults": {"num_ctx": 8192}, "report_context": 200000},
    {"enforce": {"num_ctx": 8192}, "report_context": 200000},
])
def test_report_context_with_the_model_s_num_ctx(entry):
    assert overrides(entry)["llama3.2"].report_context == 200000


def test_report_context_is_off_by_default():
    assert overrides({"defaults": {"num_ctx": 8192}})["llama3.2"] == ModelOverride({"num_ctx": 8192}, {}, None)


@pytest.mark.parametrize(("entry", "message"), [
    ({"report_context": 200000}, "llama3.2: report_context needs num_ctx in the model's defaults or enforce"),
    ({"defaults": {"num_ctx": 8192}, "report_context": 0}, "Must be greater than or equal to 1."),
    ({"defaults": {"num_ctx": 8192}, "report_context": "200k"}, "Not a valid integer."),
])
def test_a_report_context_the_proxy_cannot_use_stops_the_start(entry, message):
    with pytest.raises(ConfigError, match=message):
        overrides(entry)


def test_token_counts_defaults_and_bounds():
    counts = parse_settings({}, environ={}).token_counts
    assert (counts.learn, counts.smoothing, counts.min_prompt_tokens, counts.max_correction) == (True, 0.2, 256, 4.0)
    for bad in ({"smoothing": 0}, {"smoothing": 1.5}, {"max_correction": 1}, {"min_prompt_tokens": 0}):
        with pytest.raises(ConfigError, match="token_counts"):
            parse_settings({"token_counts": bad}, environ={})
