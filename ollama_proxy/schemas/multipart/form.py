"""Read a transcription's form as Ollama will, refusing what could be read two ways.

The proxy checks the model Ollama will run, so it reads the request as Ollama's Go does
(``goform``) and then refuses (400) a form that is ambiguous:

- ``model`` given more than once (as values of the form, in the URL query, or both), or
  given as a file (a part with a filename is a file to Go, never ``FormValue``'s value);
- a part Go gives no field name: no Content-Disposition, another type than ``form-data``,
  no or an empty ``name``, or a disposition Go cannot read (a duplicate parameter, bad
  syntax). Go skips such a part; another reader might call it ``model``;
- a header Go 1.19 reads but later Go (which Ollama is built with) refuses: a field name
  that is no token (``Content-Disposition :``), a control byte in a value;
- ``Content-Transfer-Encoding: quoted-printable``, which Go decodes: the bytes are to be
  sent as they are;
- a boundary that is not 1 to 70 of RFC 2046's characters.

What is left is read as Go reads it, and is sent on re-encoded (``writer``): every field
once more in Go's order, the URL query's pairs first, with canonical headers and one fresh
``model`` value, so that Ollama reads nothing the proxy did not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas.multipart.goform import GoForm, GoFormError, NotMultipart, boundary_param, read_go_form
from ollama_proxy.schemas.multipart.mediatype import MediaTypeError, to_bytes
from ollama_proxy.schemas.multipart.parts import FIELD_NAME_BYTES, Part

MODEL = "model"
NOT_A_FORM = "the body must be multipart/form-data with a boundary (a form with the audio file and the model)"
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")  # RFC 2046 bchars
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Field:
    """One field to send on: a value, or a file (with its filename and Content-Type as sent)."""

    name: str
    value: bytes | memoryview
    filename: str = ""
    content_type: str = ""


@dataclass(frozen=True)
class Form:
    """A form read as Ollama reads it, with its one ``model`` value at ``fields[model_at]``."""

    fields: tuple[Field, ...]
    model_at: int
    boundary: str  # the client's, kept when it is safe to

    @property
    def model(self) -> str:
        return bytes(self.fields[self.model_at].value).decode()

    def with_model(self, model: str) -> Form:
        """Return the form with its model replaced (an alias's)."""
        fields = list(self.fields)
        fields[self.model_at] = Field(MODEL, model.encode())
        return replace(self, fields=tuple(fields))


def read_form(content_type: str | None, body: bytes, query: bytes = b"") -> Form:
    """Return a transcription's form as Ollama reads it; raise InvalidRequest where it is unreadable or ambiguous."""
    try:
        boundary = boundary_param(content_type)
    except NotMultipart:
        raise InvalidRequest(NOT_A_FORM) from None
    if not _BOUNDARY.fullmatch(boundary):
        raise InvalidRequest(NOT_A_FORM)
    try:
        go = read_go_form(content_type, body, query)
    except GoFormError as exc:
        raise InvalidRequest(f"the form cannot be read as Ollama reads it: {exc}") from None
    for number, part in enumerate(go.parts, 1):
        _check_part(number, part)
    fields = [Field(name, to_bytes(value)) for name, value in go.query if name]  # no form field has no name
    fields += [Field(part.name, part.content, part.filename, part.header("Content-Type") if part.filename else "")
               for part in go.parts]
    return Form(tuple(fields), _model_at(go, fields), boundary)


def _check_part(number: int, part: Part) -> None:
    """Refuse a part Go gives no name, or reads otherwise than later Go or other readers would."""
    for key, value in part.headers:
        if not key or any(b not in FIELD_NAME_BYTES for b in to_bytes(key)):
            raise InvalidRequest(f"part {number} of the form has a header whose name is no token: {key!r}")
        if _CONTROL.search(to_bytes(value)):
            raise InvalidRequest(f"part {number} of the form has a control character in its {key} header")
    if part.quoted_printable:
        raise InvalidRequest(f"part {number} of the form is quoted-printable: send its bytes as they are, "
                             "without a Content-Transfer-Encoding")
    if not part.name:
        raise InvalidRequest(f"part {number} of the form names no field ({_why_unnamed(part)}): every part "
                             'needs Content-Disposition: form-data; name="..."')


def _why_unnamed(part: Part) -> str:
    if not part.header("Content-Disposition"):
        return "it has no Content-Disposition"
    try:
        kind, params = part.disposition()
    except MediaTypeError as exc:
        return f"its Content-Disposition cannot be read: {exc}"
    if kind != "form-data":
        return "its Content-Disposition is not form-data"
    return "its Content-Disposition has no name" if "name" not in params else "its name is empty"


def _model_at(go: GoForm, fields: list[Field]) -> int:
    """Return where the one model value is; refuse a form with none, several, or a model file."""
    if MODEL in go.files:
        raise InvalidRequest("model must be a form value, not a file (a part named model has a filename)",
                             param=MODEL)
    found = [at for at, field in enumerate(fields) if field.name == MODEL]
    if len(found) > 1:
        raise InvalidRequest(f"model is given {len(found)} times (form values and URL query together): "
                             "give it once", param=MODEL)
    if not found or not fields[found[0]].value:
        raise InvalidRequest("model is required", param=MODEL)
    try:
        bytes(fields[found[0]].value).decode()
    except UnicodeDecodeError:
        raise InvalidRequest("model is not UTF-8 text", param=MODEL) from None
    return found[0]
