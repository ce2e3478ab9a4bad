"""The items of a body counted, as each surface holds them, and a body past a bound refused."""

import pytest

from ollama_proxy.errors import PayloadTooLarge
from ollama_proxy.schemas.counts import check_item_counts, item_counts

BOUNDS = {"messages": 3, "input_items": 3, "tools": 2, "images": 2}


@pytest.mark.parametrize("body, counts", [
    ({"model": "m", "messages": [{"role": "user", "content": "hi", "images": ["aGk=", "aGk="]}], "images": ["x"]},
     {"messages": 1, "input_items": 0, "tools": 0, "images": 3}),  # native chat and generate
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                 {"type": "image_url", "image_url": {"url": "data:"}}]}],
      "tools": [{"type": "function"}, {"type": "function"}]},
     {"messages": 1, "input_items": 0, "tools": 2, "images": 1}),  # OpenAI
    ({"messages": [{"role": "user", "content": [{"type": "tool_result", "content": [
        {"type": "image", "source": {}}, {"type": "text", "text": "x"}]}, {"type": "image", "source": {}}]}]},
     {"messages": 1, "input_items": 0, "tools": 0, "images": 2}),  # Anthropic, an image inside a tool result
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "data:"}]}, {"type": "message"}]},
     {"messages": 0, "input_items": 2, "tools": 0, "images": 1}),  # Responses
    ({"input": "just text", "messages": "not a list", "tools": None},
     {"messages": 0, "input_items": 0, "tools": 0, "images": 0}),  # shapes the schemas refuse count nothing
    ({"messages": [{"content": [{"type": {"image": 1}}, {"type": ["image"], "content": [{"type": {}}]}]}]},
     {"messages": 1, "input_items": 0, "tools": 0, "images": 0}),  # a type that is no name is no image, no crash
])
def test_each_surfaces_items_are_counted(body, counts):
    assert item_counts(body) == counts


@pytest.mark.parametrize("body, bound", [
    ({"messages": [{}] * 4}, "limits.max_messages allows (3)"),
    ({"input": [{}] * 4}, "limits.max_input_items allows (3)"),
    ({"tools": [{}] * 3}, "limits.max_tools allows (2)"),
    ({"messages": [{"images": ["a", "b", "c"]}]}, "limits.max_images allows (2)"),
])
def test_a_body_past_a_bound_is_a_413_naming_the_bound(body, bound):
    with pytest.raises(PayloadTooLarge) as refused:
        check_item_counts(body, BOUNDS)
    assert refused.value.status == 413 and bound in refused.value.message


def test_a_body_within_every_bound_goes_on():
    check_item_counts({"messages": [{}] * 3, "tools": [{}] * 2}, BOUNDS)
