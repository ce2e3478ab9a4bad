import pytest

from ollama_proxy.scheduler.decisions.options import reload_options, unify


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
