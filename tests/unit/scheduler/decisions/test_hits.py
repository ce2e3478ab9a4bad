"""Predicted hits against what the answers said: counted, confirmed, and the trust they earn."""

from ollama_proxy.scheduler.decisions.hits import HitBook


def test_a_predicted_hit_is_confirmed_when_the_answer_reads_most_of_what_was_predicted_from_cache():
    book = HitBook()
    assert not book.note("gpu1", "m", prompt=4000, predicted=3800, cached=3700)
    assert book.note("gpu1", "m", prompt=4000, predicted=3800, cached=100)  # the mirror was wrong
    [report] = book.report()
    assert (report["predicted"], report["confirmed"], report["predicted_tokens"], report["confirmed_tokens"]) == (
        2, 1, 7600, 3800)
    assert book.reliability("gpu1", "m") < 1.0 and book.reliability("gpu2", "m") == 1.0


def test_a_miss_predicted_is_no_prediction_and_a_hit_nobody_foresaw_is_a_surprise():
    book = HitBook()
    assert not book.note("gpu1", "m", prompt=4000, predicted=0, cached=0)
    assert not book.note("gpu1", "m", prompt=4000, predicted=0, cached=3900)
    [report] = book.report()
    assert (report["predicted"], report["surprises"], report["reliability"]) == (0, 1, 1.0)


def test_trust_comes_back_as_predictions_are_borne_out_again():
    book = HitBook()
    book.note("gpu1", "m", 4000, 3800, 0)
    low = book.reliability("gpu1", "m")
    for _ in range(20):
        book.note("gpu1", "m", 4000, 3800, 3800)
    assert low < book.reliability("gpu1", "m") < 1.0 and book.reliability("gpu1", "m") > 0.95
