import pytest

from ollama_proxy.scheduler.decisions.prefix import (
    MAX_LINKS,
    chain_of,
    decode,
    encode,
    kept,
    links_of,
    prompt_tokens,
    shared_tokens,
)

TOOLS = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]


def _turns(count: int) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "x" * 400}
            for i in range(count)]


def test_a_conversations_next_turn_shares_all_of_the_last_turn():
    last = chain_of("/api/chat", {"tools": TOOLS, "messages": _turns(301)})
    following = chain_of("/api/chat", {"tools": TOOLS, "messages": _turns(303)})
    assert shared_tokens(following, links_of(last)) == prompt_tokens(last)
    assert prompt_tokens(following) > prompt_tokens(last) > 300 * 100


def test_prompts_part_where_they_first_differ_within_the_links_both_keep():
    base = chain_of("/api/chat", {"messages": _turns(5)})
    other = chain_of("/api/chat", {"messages": _turns(2) + [{"role": "user", "content": "something else"}]})
    assert shared_tokens(other, links_of(base)) == base[2].tokens  # the first two messages, not the third
    assert shared_tokens(chain_of("/api/chat", {"tools": TOOLS, "messages": _turns(5)}), links_of(base)) == 0


def test_a_chain_keeps_tens_of_links_however_long_the_prompt():
    chain = chain_of("/api/chat", {"messages": _turns(20_000)})
    assert len(chain) < 32 <= MAX_LINKS
    assert [link.position for link in chain][:6] == [0, 1, 2, 4, 8, 16]
    assert chain[-1].position == 20_000 and all(kept(link.position, 20_000) for link in chain)


def test_images_cost_a_fixed_number_of_tokens_not_their_encodings_length():
    picture = "iVBORw0KGgo" * 100_000
    chain = chain_of("/api/chat", {"messages": [{"role": "user", "content": "what is this?", "images": [picture]}]})
    assert prompt_tokens(chain) < 300
    other = chain_of("/api/chat", {"messages": [{"role": "user", "content": "what is this?", "images": ["AAAA"]}]})
    assert other[-1].digest != chain[-1].digest


def test_a_generation_is_chained_by_blocks_of_its_prompt_after_its_system():
    text = "a long document. " * 2000
    chain = chain_of("/api/generate", {"system": "summarise", "prompt": text})
    longer = chain_of("/api/generate", {"system": "summarise", "prompt": text + " and more"})
    assert shared_tokens(longer, links_of(chain)) >= prompt_tokens(chain) - 2048 // 4
    assert chain_of("/api/embed", {"input": "x"}) == ()


@pytest.mark.parametrize("bad", ["x", [[1, "d"]], [["1", "d", 3]], [[1, "d" * 40, 3]], [[0, "d", 1]] * (MAX_LINKS + 1)])
def test_a_malformed_chain_on_the_wire_is_refused(bad):
    with pytest.raises(ValueError):
        decode(bad)


def test_a_chain_comes_back_from_its_wire_form_as_it_went():
    chain = chain_of("/api/chat", {"messages": _turns(40)})
    assert decode(encode(chain)) == chain and decode(None) == ()


def test_a_message_of_a_long_text_is_chained_by_all_of_it_and_counted_by_its_length():
    text = "log line " * 300_000  # 2.7 MB: hashed a piece at a time
    changed = text[:-10] + "X" + text[-9:]  # one character near its end
    chain = chain_of("/api/chat", {"messages": [{"role": "user", "content": text}]})
    assert chain == chain_of("/api/chat", {"messages": [{"role": "user", "content": text}]})
    assert chain[-1].digest != chain_of("/api/chat", {"messages": [{"role": "user", "content": changed}]})[-1].digest
    assert chain[-1].digest != chain_of("/api/chat", {"messages": [{"role": "system", "content": text}]})[-1].digest
    assert prompt_tokens(chain) == prompt_tokens(chain_of("/api/chat", {"messages": [{"role": "user",
                                                                                       "content": "x" * len(text)}]}))
