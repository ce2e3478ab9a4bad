import threading
import time

from tests.fakes.ollama_reading import PromptReader

SECONDS_PER_TOKEN = 0.001


def _read_together(reader: PromptReader, prompts: dict[int, int], stagger: float = 0.0) -> dict[int, float]:
    """Read each slot's prompt on its own thread, started ``stagger`` seconds apart in the order given; return
    when each ended, in seconds from the first start."""
    stopping, began, ended = threading.Event(), time.monotonic(), {}

    def read(slot: int, tokens: int) -> None:
        reader.read(slot, tokens, stopping)
        ended[slot] = time.monotonic() - began

    threads = []
    for slot, tokens in prompts.items():
        threads.append(threading.Thread(target=read, args=(slot, tokens)))
        threads[-1].start()
        time.sleep(stagger)
    for thread in threads:
        thread.join(10)
    return ended


def test_a_prompt_alone_reads_at_the_runner_rate():
    reader = PromptReader(SECONDS_PER_TOKEN)
    took = reader.read(0, 200, threading.Event())
    assert 0.2 <= took < 0.35


def test_two_prompts_at_once_take_as_long_as_one_after_the_other_the_lower_slot_first():
    ended = _read_together(PromptReader(SECONDS_PER_TOKEN), {1: 200, 0: 200})
    assert 0.2 <= ended[0] < 0.35  # slot 0 reads first though it asked second
    assert ended[1] >= 0.4  # slot 1 waited for it: both took what one after the other takes


def test_a_lower_slot_that_comes_later_goes_ahead_of_what_is_left():
    # Slot 1 reads 300 tokens; 0.1 s in, slot 0 asks 100: slot 0 ends near 0.2 s, slot 1 at 0.4 s at least.
    ended = _read_together(PromptReader(SECONDS_PER_TOKEN), {1: 300, 0: 100}, stagger=0.1)
    assert ended[0] < ended[1]
    assert ended[1] >= 0.4


def test_a_reading_stops_when_the_server_does():
    stopping = threading.Event()
    threading.Timer(0.1, stopping.set).start()
    took = PromptReader(SECONDS_PER_TOKEN).read(0, 10_000, stopping)
    assert took < 5
