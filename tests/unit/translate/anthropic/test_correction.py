"""The learnt correction: a smoothed ratio of counted to estimated prompt tokens, per model."""

from __future__ import annotations

import pytest

from ollama_proxy.translate.anthropic.correction import TokenCorrection, corrected, smoothed
from ollama_proxy.translate.anthropic.tokens import Estimate

PROMPT = Estimate(1000)


def test_a_model_without_answers_keeps_the_estimate():
    assert TokenCorrection().ratio("ollama:llama3.2") == 1.0
    assert corrected(PROMPT, 1.0) == 1000


def test_the_first_answer_counts_whole_then_each_one_by_its_weight():
    correction = TokenCorrection(smoothing=0.25)
    assert correction.observe("m", PROMPT, 1200)
    assert correction.ratio("m") == 1.2
    assert correction.observe("m", Estimate(2000), 3200)  # 1.6
    assert correction.ratio("m") == pytest.approx(1.2 + 0.25 * (1.6 - 1.2))
    assert correction.ratio("other") == 1.0  # one ratio per model


def test_the_ratio_converges_on_the_tokenizer_s():
    correction = TokenCorrection(smoothing=0.2)
    ratios = []
    for estimated, counted in ((1000, 800), *[(1000 + 400 * n, round((1000 + 400 * n) * 0.85)) for n in range(8)]):
        correction.observe("m", Estimate(estimated), counted)
        ratios.append(correction.ratio("m"))
    assert ratios == sorted(ratios) and ratios[-1] == pytest.approx(0.85, abs=0.01)
    assert corrected(Estimate(3000), correction.ratio("m")) == pytest.approx(2550, rel=0.01)


def test_images_keep_their_flat_cost():
    assert corrected(Estimate(1000, images=2), 0.5) == 500 + 2 * 1600


@pytest.mark.parametrize(("estimate", "counted", "context"), [
    pytest.param(PROMPT, None, None, id="no count"),
    pytest.param(PROMPT, 0, None, id="an old Ollama's 0 for a cached prompt"),
    pytest.param(PROMPT, True, None, id="not a number"),
    pytest.param(PROMPT, "900", None, id="a string"),
    pytest.param(Estimate(100), 90, None, id="too short to tell"),
    pytest.param(Estimate(1000, images=1), 1500, None, id="images: their cost is the model's own"),
    pytest.param(Estimate(10000), 4096, 4096, id="the count fills the context: Ollama cut the prompt"),
    pytest.param(PROMPT, 5000, None, id="further off than max_correction"),
    pytest.param(PROMPT, 200, None, id="further off than max_correction, down"),
])
def test_answers_that_cannot_be_a_tokenizer_s_difference_teach_nothing(estimate, counted, context):
    correction = TokenCorrection(min_prompt_tokens=256, max_correction=4.0)
    assert not correction.observe("m", estimate, counted, context)
    assert correction.ratio("m") == 1.0


@pytest.mark.parametrize("context", [4096, None, "4096", True])
def test_a_count_below_the_context_is_learnt(context):
    correction = TokenCorrection()
    assert correction.observe("m", Estimate(5000), 4000, context=context)  # a num_ctx that is no number is none
    assert correction.ratio("m") == 0.8


def test_smoothed():
    assert smoothed(None, 2.0, 0.2) == 2.0
    assert smoothed(1.0, 2.0, 0.2) == pytest.approx(1.2)


@pytest.mark.parametrize("counted", [997, 1201, 1333, 2999])
def test_a_ratio_learnt_from_a_prompt_gives_back_its_count(counted):
    correction = TokenCorrection()
    correction.observe("m", Estimate(999.75), counted)
    assert corrected(Estimate(999.75), correction.ratio("m")) == counted
