import pytest

from ollama_proxy.dispatch.answer_counts import AnswerCounts

SHORT = {"prompt_eval_count": 7, "prompt_eval_duration": 70_000_000, "eval_count": 8, "eval_duration": 2_000_000_000}


@pytest.mark.parametrize("answers, estimated, counted", [
    ([], 18, 18),  # nothing said yet: the estimate stands
    ([(18, SHORT)], 18, 7),  # Ollama counted 7 of a prompt estimated at 18
    ([(18, SHORT)], 20, 8),  # a prompt of the same size class: the same ratio
    ([(18, SHORT), (4000, {"prompt_eval_count": 5000})], 4100, 5125),  # a long one: its own class
    ([(18, SHORT), (4000, {"prompt_eval_count": 5000})], 30, 12),  # a short one: the nearest class
    ([(18, {"prompt_eval_count": 1000})], 18, 18),  # further off than any template: a prompt cut, not learnt
    ([(18, {"eval_count": 3})], 18, 18),  # no prompt count said
], ids=["unknown", "same prompt", "same class", "long class", "nearest class", "implausible", "no count"])
def test_a_prompt_is_charged_as_the_models_answers_say_ollama_counts_it(answers, estimated, counted):
    counts = AnswerCounts()
    for sent, answer in answers:
        counts.answered("llama3.2", sent, answer)
    assert counts.prompt("llama3.2", estimated) == counted
    assert counts.prompt("other", estimated) == estimated  # learnt per model


def test_a_whole_answer_is_charged_the_tokens_its_pace_made_in_its_slot_time_after_its_prompt():
    counts = AnswerCounts()
    assert counts.generated("llama3.2", 2.0, 7) == 0  # no pace known yet
    counts.answered("llama3.2", 18, SHORT)  # 4 tokens a second, 10 ms a prompt token
    assert counts.generated("llama3.2", 1.07, 7) == 4
    assert counts.generated("llama3.2", 0.05, 7) == 0  # still reading its prompt
    counts.answered("llama3.2", 18, {**SHORT, "eval_count": 16})  # 8 a second, smoothed: 4.8
    assert counts.generated("llama3.2", 1.07, 7) == 5
