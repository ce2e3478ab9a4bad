"""What a request's prompt begins with, as the scheduler compares prompts (pure).

Ollama keeps, in each slot of a loaded model, the prompt it last read, and reads
again only what a new prompt does not share with one of them. A prompt is
compared here as a chain of links: how it opens (the tools and the first
message's role; the system of a generation), then each message in turn, each
link hashed together with all before it, so two prompts share a link at a
position exactly when they share everything up to it. Each link carries the
tokens the prompt has up to its end (estimated from its characters: the
scheduler compares servers, and learns the seconds a token takes from what
Ollama reports).

A chain keeps only some positions: the first few, each power of two, and the
last ``TAIL``; a conversation's next turn repeats the last turn's whole chain,
so the deepest position both keep is where they part (or, far back, a little
before). A prompt thus costs tens of links however long it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

CHARS_PER_TOKEN = 4  # a rough tokenizer: the rate learned absorbs the error
LINK_TOKENS = 4  # what each message adds besides its text: role and template marks
BLOCK_CHARS = 2048  # a generation's prompt is chained in blocks of this many characters
TAIL = 8  # the last links a chain keeps
MAX_LINKS = 64  # more than any chain keeps (a few per power of two, and the tail): a longer one is malformed
IMAGE_TOKENS = 256  # what an image costs a prompt, about
PIECE_CHARS = 1 << 20  # a longer text is hashed a piece at a time


@dataclass(frozen=True)
class Link:
    position: int  # 0: how the prompt opens (the tools, the first role); then one per message (or block)
    digest: str
    tokens: int  # the prompt's tokens up to the end of this link


Chain = tuple[Link, ...]


def chain_of(path: str, body: dict) -> Chain:
    """The prompt chain of an Ollama request body (``/api/chat`` or ``/api/generate``); empty for others."""
    if path == "/api/chat":
        messages = body.get("messages") if isinstance(body.get("messages"), list) else []
        first = messages[0] if messages and isinstance(messages[0], dict) else {}
        # The template opens with the tools or the first message's role: prompts that open alike share it.
        head = _text(body.get("tools")) + _text(first.get("role"))
        return _chain(head, messages)
    if path == "/api/generate":
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else ""
        blocks = [text[i:i + BLOCK_CHARS] for i in range(0, len(text), BLOCK_CHARS)]
        return _chain(_text(body.get("system")) + _text(body.get("images")), blocks)
    return ()


def _chain(head: str, parts: list) -> Chain:
    digest = hashlib.blake2b(head.encode(errors="replace"), digest_size=8)
    tokens = text_tokens(head) + LINK_TOKENS
    links = [Link(0, digest.hexdigest(), tokens)]
    last = len(parts)
    for position, part in enumerate(parts, 1):
        _feed(digest, part)
        tokens += _part_tokens(part) + LINK_TOKENS
        if kept(position, last):
            links.append(Link(position, digest.copy().hexdigest(), tokens))
    return tuple(links)


def kept(position: int, last: int) -> bool:
    """Whether a chain of ``last`` links keeps the one at ``position``."""
    return position <= 2 or position & (position - 1) == 0 or position > last - TAIL


def shared_tokens(chain: Chain, held: dict[int, Link]) -> int:
    """The tokens ``chain`` shares with a prompt whose kept links are ``held`` (by position)."""
    for link in reversed(chain):
        other = held.get(link.position)
        if other is not None and other.digest == link.digest:
            return link.tokens
    return 0


def prompt_tokens(chain: Chain) -> int:
    return chain[-1].tokens if chain else 0


def links_of(chain: Chain) -> dict[int, Link]:
    return {link.position: link for link in chain}


def encode(chain: Iterable[Link]) -> list[list]:
    return [[link.position, link.digest, link.tokens] for link in chain]


def decode(links: object) -> Chain:
    """A chain from its wire form; ValueError if it is not one."""
    if links is None:
        return ()
    if not isinstance(links, list) or len(links) > MAX_LINKS:
        raise ValueError(f"a prompt chain is a list of at most {MAX_LINKS} links")
    chain = []
    for item in links:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], int) and isinstance(item[1], str)
                and isinstance(item[2], int) and len(item[1]) <= 32):
            raise ValueError("a prompt link is [position, digest, tokens]")
        chain.append(Link(*item))
    return tuple(chain)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _feed(digest, part: object) -> None:
    """Hash a message (or a block) into ``digest``; its long texts a piece at a time.

    One huge text goes in pieces: the hash lets other threads run while it reads a piece, where a
    JSON dump of the whole message would hold the interpreter (0.2 s for 45 MB), event loop and all.
    """
    long = {k for k, v in part.items() if isinstance(v, str) and len(v) > PIECE_CHARS} if isinstance(part, dict) else ()
    if not long:
        digest.update(_text(part).encode(errors="replace"))
        return
    digest.update(_text({k: v for k, v in part.items() if k not in long}).encode(errors="replace"))
    for name in sorted(long):
        digest.update(b"\0" + name.encode(errors="replace") + b"\0")
        text = part[name]
        for start in range(0, len(text), PIECE_CHARS):
            digest.update(text[start:start + PIECE_CHARS].encode(errors="replace"))


def _part_tokens(part: object) -> int:
    """A message's tokens: its text fields', and a fixed cost per image (not its base64's length)."""
    if not isinstance(part, dict):
        return text_tokens(_text(part))
    images = part.get("images")
    count = len(images) if isinstance(images, list) else 0
    return sum(text_tokens(_text(v)) for k, v in part.items() if k != "images") + count * IMAGE_TOKENS


def text_tokens(text: str) -> int:
    """The proxy's rough count of a text's tokens (``CHARS_PER_TOKEN`` characters a token)."""
    return -(-len(text) // CHARS_PER_TOKEN)
