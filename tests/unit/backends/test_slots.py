import time

from ollama_proxy.backends.slots import Slots


def test_slots_are_shared_by_every_holder_of_the_directory(tmp_path):
    one, other = Slots(str(tmp_path), "gpu2", 2), Slots(str(tmp_path), "gpu2", 2)
    first, second = one.acquire(0), other.acquire(0)
    assert first is not None and second is not None
    started = time.monotonic()
    assert one.acquire(0.1) is None
    assert time.monotonic() - started >= 0.1
    Slots.release(first)
    third = other.acquire(0)
    assert third is not None
    Slots.release(second)
    Slots.release(third)


def test_servers_have_their_own_slots(tmp_path):
    held = Slots(str(tmp_path), "gpu2", 1).acquire(0)
    assert Slots(str(tmp_path), "gpu3", 1).acquire(0) is not None
    assert Slots(str(tmp_path), "gpu2", 1).acquire(0) is None
    Slots.release(held)
