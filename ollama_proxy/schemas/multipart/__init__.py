"""Read OpenAI's audio transcription form as Ollama reads it, and write it back out unambiguously.

Ollama reads the form with Go's net/http (``ParseMultipartForm``, ``FormValue("model")``), whose
reading differs from other parsers' in ways a caller can aim at: a part with a filename is a file,
not a value; ``name*=`` (RFC 2231) overrides ``name``; folded header lines are joined; a
Content-Disposition with a duplicate parameter names nothing; the URL query's ``model`` comes before
the form's. The proxy checks what Go reads, in four rooms after Go's own:

- ``mediatype``: ``mime.ParseMediaType``;
- ``parts``: ``mime/multipart``'s Reader and ``net/textproto``'s header reading;
- ``goform``: ``ParseMultipartForm`` and ``FormValue`` (the URL query included);
- ``form``: the proxy's reading, which refuses an ambiguous form, and ``writer``, which sends the
  rest on re-encoded, with the one model the proxy checked.
"""

from ollama_proxy.schemas.multipart.form import Field, Form, read_form
from ollama_proxy.schemas.multipart.writer import write_form

__all__ = ["Field", "Form", "read_form", "write_form"]
