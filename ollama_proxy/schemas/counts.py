"""Count the items of a request body that the proxy checks one by one: messages, input items, tools, images (pure).

Each count has a bound (``limits.max_*``): a body past one is refused before it is
checked field by field, so no request holds a worker for long, and the refusal
says which bound, in the surface's own error shape (413).
"""

from __future__ import annotations

from ollama_proxy.errors import PayloadTooLarge

IMAGE_PART_TYPES = frozenset({"image_url", "image", "input_image"})  # OpenAI, Anthropic, Responses


def item_counts(body: dict) -> dict[str, int]:
    """Return the body's messages (native, OpenAI, Anthropic), input items (Responses), tools and images."""
    messages, items = body.get("messages"), body.get("input")
    tools = body.get("tools")
    turns = [m for m in (messages if isinstance(messages, list) else ())] + \
            [i for i in (items if isinstance(items, list) else ())]
    return {
        "messages": len(messages) if isinstance(messages, list) else 0,
        "input_items": len(items) if isinstance(items, list) else 0,
        "tools": len(tools) if isinstance(tools, list) else 0,
        "images": _images(body) + sum(_images(turn) for turn in turns if isinstance(turn, dict)),
    }


def _images(item: dict) -> int:
    """Images of one message or input item: native ``images``, and image parts of its content (one level down too:
    an Anthropic tool result holds blocks of its own)."""
    images = item.get("images")
    count = len(images) if isinstance(images, list) else 0
    content = item.get("content")
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict):
            count += _is_image(part)
            inner = part.get("content")
            count += sum(_is_image(p) for p in (inner if isinstance(inner, list) else ()))
    return count


def _is_image(part: object) -> bool:
    """Whether a content part is an image; its type may be anything a client sent (a list, an object)."""
    kind = part.get("type") if isinstance(part, dict) else None
    return isinstance(kind, str) and kind in IMAGE_PART_TYPES


def check_item_counts(body: dict, bounds: dict[str, int]) -> None:
    """Refuse a body with more of an item than its bound (``bounds``: item -> its ``limits.max_<item>``)."""
    for item, count in item_counts(body).items():
        bound = bounds.get(item)
        if bound is not None and count > bound:
            raise PayloadTooLarge(f"the request has {count} {item.replace('_', ' ')}, more than "
                                  f"limits.max_{item} allows ({bound})")
