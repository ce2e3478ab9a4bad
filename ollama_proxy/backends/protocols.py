"""Say what the rooms outside backends/ may rely on: a backend, and the answer it opens.

Several classes have each shape: a backend is one Ollama server, the Ollama
servers for one model through the dispatcher, or an OpenAI-compatible provider;
an answer is urllib3's read as it arrives, the dispatcher's (which frees its
server's slot when closed), or a provider's, translated into Ollama's chunks or
passed through. Routing, the relay and the
blueprints hold them by these protocols and never ask which class they hold.
Every class is checked against its protocol by a unit test, signatures included.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol


class Answer(Protocol):
    """An open answer from an upstream: read it or iterate it, and always close it (``with`` does)."""

    status: int
    headers: Mapping[str, str]
    waited: float  # seconds until the upstream started answering
    busy: float  # ``waited``, plus the time spent reading the body

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body as it arrives."""

    def read(self) -> bytes:
        """Return the whole body."""

    def json(self) -> dict:
        """Return the whole body as a JSON object."""

    def abort(self) -> None:
        """Drop the connection from any greenlet: the reader ends, the upstream sees the client go."""

    def close(self) -> None:
        """Give the connection back, or drop it if the body was not read to its end."""

    def __enter__(self) -> Answer: ...

    def __exit__(self, *exc: object) -> None: ...


class OllamaShapedAnswer(Answer, Protocol):
    """An answer in Ollama's shapes: an NDJSON stream of chunks, or one object."""

    @property
    def is_ndjson(self) -> bool: ...

    def iter_chunks(self) -> Iterator[dict]:
        """Yield each chunk of a stream as a dict, as soon as it is whole."""

    def raise_for_error(self) -> None:
        """Raise the upstream's error, with its status and message, if it answered one (and close)."""


class PassedThroughAnswer(Answer, Protocol):
    """A provider's answer in its own protocol, relayed as it came; its usage is read on the way."""

    usage: dict | None  # the usage of the answer read so far (a stream's comes last)


class Backend(Protocol):
    """Where a route sends a model's requests: Ollama-shaped bodies go in, Ollama-shaped answers come out."""

    name: str  # for the access log: the server, provider or pool that answered
    describe: str  # for error messages: what it is and where

    def open(self, method: str, path: str, /, *, body: Any = None, headers: dict[str, str] | None = None,
             query: str = "", timeout: tuple[float, float] | None = None,
             timeout_setting: str = ...) -> OllamaShapedAnswer:
        """Send a request as it is (the native API) and return the open answer once its headers are in."""

    def encode(self, body: dict, /) -> dict | bytes:
        """Return a body as ``post_json`` takes it, made once for every request that sends it."""

    def post_json(self, path: str, body: dict | bytes, /, model_label: str | None = None) -> OllamaShapedAnswer:
        """Send an Ollama request (a body, or what ``encode`` made of one); return the open answer or raise its error.

        ``model_label`` is the model as the client named it, for answers the backend makes up itself.
        """


class PassthroughBackend(Backend, Protocol):
    """A backend that speaks OpenAI's protocol itself: an OpenAI request passes through it untranslated."""

    def open_openai(self, path: str, body: dict, headers: Iterable[tuple[str, str]] = ()) -> PassedThroughAnswer:
        """Send an OpenAI request; return the open answer, its bytes as the provider sent them."""
