"""A prompt longer than the model's context: Ollama cuts it to fit (server/prompt.go ``chatPrompt`` drops the first
messages, llm/llama_server.go a prompt's middle), so its slot holds nothing the proxy hashed."""

from ollama_proxy.scheduler.decisions.caches import PromptCaches
from ollama_proxy.scheduler.decisions.core import Bounds, Scheduler, Ticket
from ollama_proxy.scheduler.decisions.estimates import Estimates
from ollama_proxy.scheduler.decisions.fairness import Share
from ollama_proxy.scheduler.decisions.prefix import prompt_tokens
from ollama_proxy.scheduler.decisions.servers import Loaded, ServerSpec
from ollama_proxy.scheduler.decisions.tickets import PromptRead
from tests.unit.scheduler.decisions.test_caches import chat
from tests.unit.scheduler.decisions.test_placement import _turn

CONTEXT = 4096


def _pasted(n: int):
    """A whole log pasted into one message, then a question: 11,000 tokens, each ``n`` another log."""
    return chat(f"{n} " + "log line " * 5_000, "Read.", "What failed?")


def test_a_prompt_past_the_context_reads_nothing_from_cache_and_leaves_nothing_to_compare():
    caches = PromptCaches(1)
    caches.limit(CONTEXT)
    caches.take("t1", _pasted(0), 1.0)
    caches.release("t1", 2.0)
    assert caches.held() == [] and caches.holds(_pasted(0)) == 0
    assert caches.pick(_pasted(0)).cached == 0


def test_prompts_held_past_a_context_learned_later_are_dropped_and_those_within_it_kept():
    caches, short = PromptCaches(2), chat("a short question")
    for n, chain in enumerate([_pasted(0), short]):
        caches.take(f"t{n}", chain, float(n))
        caches.release(f"t{n}", float(n) + 0.5)
    caches.limit(CONTEXT)
    assert [slot.prompt.chain for slot in caches.held()] == [short] and caches.ram == []


def _scheduler(context: int | None) -> Scheduler:
    """One server of one slot, its model loaded with ``context`` (as /api/ps says) or none known; its RAM prompt
    cache holds 8,192 tokens, not one pasted log."""
    s = Scheduler([ServerSpec("gpu1", num_parallel=1, prompt_cache_mib=8)], Bounds(load_gather=0),
                  Estimates(default_prefill_rate=1000))
    s.refresh("gpu1", {"m": Loaded({} if context is None else {"num_ctx": context}, kv_bytes=1024)}, now=0)
    return s


def _ticket(id: str, prefix) -> Ticket:
    return Ticket(id, Share(id), "m", ("gpu1",), prefix=prefix)


def test_a_long_prompt_does_not_wait_to_spare_a_prompt_ollama_cut_to_the_context():
    """Pasted logs, one after another: the one before was cut to fit, so the slot holds nothing of it to spare.
    Within the context, the same prompts wait to spare the one before (its 11,000 tokens, read again)."""
    for context, waits in ((CONTEXT, False), (None, True)):
        s = _scheduler(context)
        [_] = s.submit(_ticket("a", _pasted(0)), now=1)
        s.end("a", now=2)
        assert (s.submit(_ticket("b", _pasted(1)), now=3) == []) is waits, context


def test_a_cut_prompt_is_expected_to_read_the_context_not_all_it_sent():
    s = _scheduler(CONTEXT)
    s.estimates.generated("m", "a", 1.0)
    s.submit(_ticket("a", _pasted(0)), now=1)
    assert s.running["a"].expected == 1.0 + CONTEXT / 1000


def test_what_ollama_counted_of_a_cut_prompt_does_not_teach_the_token_scale():
    s = _scheduler(CONTEXT)
    s.submit(_ticket("a", _pasted(0)), now=1)
    s.end("a", now=2, read=PromptRead(tokens=CONTEXT, cached=None, seconds=1.0))
    s.submit(_ticket("b", _turn("b", 1)), now=3)  # 3,000 tokens: within the context
    s.end("b", now=4, read=PromptRead(tokens=3300, cached=None, seconds=1.0))
    assert s.estimates.scale("m") == 3300 / prompt_tokens(_turn("b", 1))
