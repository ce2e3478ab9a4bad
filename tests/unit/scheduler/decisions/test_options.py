import pytest

from ollama_proxy.scheduler.decisions.options import largest, reload_options, unify, within_training


def test_only_the_options_that_make_ollama_reload_are_kept():
    asked = {"num_ctx": 8192, "temperature": 0.2, "num_gpu": 99, "seed": 1, "num_batch": None}
    assert reload_options(asked) == {"num_ctx": 8192, "num_gpu": 99}
    assert reload_options(None) == {} and reload_options("nonsense") == {}


@pytest.mark.parametrize("loaded, asked, enforced, sent, reloads", [
    (None, {"num_ctx": 2048}, (), {"num_ctx": 2048}, False),  # not loaded: as asked (a load, not a reload)
    ({"num_ctx": 8192}, {}, (), {"num_ctx": 8192}, False),  # nothing asked: the loaded value
    ({"num_ctx": 8192}, {"num_ctx": 2048}, (), {"num_ctx": 8192}, False),  # less: the loaded value
    ({"num_ctx": 8192}, {"num_ctx": 8192}, (), {"num_ctx": 8192}, False),
    ({"num_ctx": 2048}, {"num_ctx": 8192}, (), {"num_ctx": 8192}, True),  # more: reload once, to the larger
    ({"num_ctx": 8192}, {"num_ctx": 2048}, ("num_ctx",), {"num_ctx": 2048}, True),  # an override wins
    ({"num_ctx": 4096}, {"num_gpu": 20}, (), {"num_ctx": 4096, "num_gpu": 20}, True),  # not known loaded: as asked
    ({"num_ctx": 4096, "use_mmap": True}, {"use_mmap": False}, (), {"num_ctx": 4096, "use_mmap": True}, False),
])
def test_unify(loaded, asked, enforced, sent, reloads):
    assert unify(loaded, asked, enforced) == (sent, reloads)


# chosen: the largest values asked for the model on the server so far (``largest``).
@pytest.mark.parametrize("loaded, asked, enforced, chosen, sent, reloads", [
    # Not loaded: the model loads with the largest value asked so far, whatever this request asked.
    (None, {"num_ctx": 2048}, (), {"num_ctx": 8192}, {"num_ctx": 8192}, False),
    (None, {}, (), {"num_ctx": 8192}, {"num_ctx": 8192}, False),  # asked none: sent explicitly, not the default
    (None, {"num_ctx": 16384}, (), {"num_ctx": 8192}, {"num_ctx": 16384}, False),
    (None, {"num_ctx": 2048}, ("num_ctx",), {"num_ctx": 8192}, {"num_ctx": 2048}, False),  # an override wins
    (None, {}, (), {}, {}, False),  # nothing ever asked: Ollama's default, for every request alike
    # Loaded: the loaded value stands for a request asking less or nothing, whatever was asked before.
    ({"num_ctx": 4096}, {}, (), {"num_ctx": 8192}, {"num_ctx": 4096}, False),
    ({"num_ctx": 4096}, {"num_ctx": 2048}, (), {"num_ctx": 8192}, {"num_ctx": 4096}, False),
    # A reload goes to the largest asked, so it happens once.
    ({"num_ctx": 4096}, {"num_ctx": 6144}, (), {"num_ctx": 8192}, {"num_ctx": 8192}, True),
    ({"num_ctx": 4096}, {"num_gpu": 20}, (), {"num_ctx": 8192}, {"num_ctx": 8192, "num_gpu": 20}, True),
    # Loaded without the value (Ollama's default, until /api/ps says): a request asking none shares it.
    ({}, {}, (), {"num_ctx": 8192}, {}, False),
    ({}, {"num_ctx": 2048}, (), {"num_ctx": 8192}, {"num_ctx": 8192}, True),
])
def test_unify_with_the_values_chosen_for_the_model(loaded, asked, enforced, chosen, sent, reloads):
    assert unify(loaded, asked, enforced, chosen) == (sent, reloads)


@pytest.mark.parametrize("chosen, asked, enforced, kept", [
    (None, {"num_ctx": 2048}, (), {"num_ctx": 2048}),
    ({"num_ctx": 8192}, {"num_ctx": 2048}, (), {"num_ctx": 8192}),
    ({"num_ctx": 2048}, {"num_ctx": 8192, "num_gpu": 20}, (), {"num_ctx": 8192, "num_gpu": 20}),
    ({"num_ctx": 2048}, {}, (), {"num_ctx": 2048}),
    ({"num_ctx": 2048}, {"num_ctx": 65536}, ("num_ctx",), {"num_ctx": 2048}),  # an override's value is its own
    ({}, {"use_mmap": False, "num_ctx": True}, (), {}),  # not a number: no larger or smaller
])
def test_largest_keeps_the_largest_number_asked(chosen, asked, enforced, kept):
    assert largest(chosen, asked, enforced) == kept


def test_a_context_past_the_training_one_is_brought_down_to_it_and_others_are_kept():
    assert within_training({"num_ctx": 131072, "num_batch": 512}, 32768) == {"num_ctx": 32768, "num_batch": 512}
    assert within_training({"num_ctx": 8192}, 32768) == {"num_ctx": 8192}
    assert within_training({"num_ctx": 131072}, None) == {"num_ctx": 131072}  # not known: as asked
