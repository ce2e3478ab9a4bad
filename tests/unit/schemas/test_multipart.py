import io

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.formparser import parse_form_data
from werkzeug.test import encode_multipart

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas.multipart import FieldScanner, Span, boundary_of, part_name, read_field, with_value

BOUNDARY = "XyZ-boundary-0123"
AUDIO = bytes(range(256)) * 40  # 10 KiB, CRLFs and dashes inside


def form(*parts: tuple[str, object]) -> bytes:
    """Encode the fields and files (``(bytes, filename)``) as a multipart body, in the order given."""
    values = {name: FileStorage(io.BytesIO(value[0]), value[1]) if isinstance(value, tuple) else value
              for name, value in parts}
    return encode_multipart(values, boundary=BOUNDARY)[1]


def value_of(body: bytes, name: str = "model", pieces: int | None = None) -> str | None:
    """Feed ``body`` to a scanner (whole, or in pieces of this size); return the field's value."""
    scanner = FieldScanner(BOUNDARY.encode(), name)
    step = pieces or len(body)
    for at in range(0, len(body), step):
        scanner.feed(body[at:at + step])
        if scanner.done:
            break
    if scanner.span is None:
        return None
    return bytes(scanner.head[scanner.span.start:scanner.span.end]).decode()


@pytest.mark.parametrize("parts, model", [
    ([("model", "llama3.2"), ("file", (AUDIO, "a.wav"))], "llama3.2"),
    ([("file", (AUDIO, "a.wav")), ("model", "llama3.2")], "llama3.2"),  # the file first
    ([("language", "en"), ("model", "hf.co/x/y:Q4_K_M"), ("file", (AUDIO, "a.wav"))],
     "hf.co/x/y:Q4_K_M"),
    ([("model", ""), ("file", (AUDIO, "a.wav"))], ""),  # no CRLF of its own: werkzeug writes it so
    ([("file", (AUDIO, "a.wav")), ("model", "")], ""),
    ([("model", "line one\r\nline two")], "line one\r\nline two"),
    ([("file", (AUDIO, "model"))], None),  # a file named "model" is no model field
    ([("models", "llama3.2")], None),
    ([("prompt", "no model here")], None),
])
def test_the_field_is_found_wherever_the_pieces_split_the_body(parts, model):
    body = form(*parts)
    for pieces in (None, 1, 7, 64, 4096):
        assert value_of(body, pieces=pieces) == model, pieces


def test_the_field_is_read_as_a_form_parser_reads_it():
    body = form(("file", (AUDIO, "a.wav")), ("model", "qwen3:8b"), ("prompt", "names: Ann"))
    environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "REQUEST_METHOD": "POST",
               "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}"}
    _, fields, files = parse_form_data(environ)
    audio = files["file"]
    try:
        assert audio.read() == AUDIO
    finally:
        audio.close()
    assert value_of(body) == fields["model"] == "qwen3:8b"


def test_scanning_stops_at_the_field_and_at_the_closing_delimiter():
    body = form(("model", "llama3.2"), ("file", (AUDIO, "a.wav")))
    scanner = FieldScanner(BOUNDARY.encode(), "model")
    scanner.feed(body[:200])
    assert scanner.span is not None and not scanner.ended
    absent = FieldScanner(BOUNDARY.encode(), "model")
    absent.feed(form(("prompt", "p")))
    assert absent.ended and absent.span is None


def test_read_field_reads_no_further_than_the_field():
    body = form(("model", "llama3.2"), ("file", (AUDIO * 20, "a.wav")))
    stream = io.BytesIO(body)
    scanner = read_field(stream.read, BOUNDARY.encode(), "model")
    assert scanner.span is not None
    assert len(scanner.head) == stream.tell() < len(body)
    assert bytes(scanner.head) + stream.read() == body


def test_read_field_stops_at_the_end_of_a_body_without_it():
    body = form(("file", (AUDIO, "a.wav")))
    scanner = read_field(io.BytesIO(body).read, BOUNDARY.encode(), "model")
    assert scanner.span is None and bytes(scanner.head) == body


def test_with_value_replaces_the_field_alone():
    body = form(("model", "whisper"), ("file", (AUDIO, "a.wav")))
    scanner = FieldScanner(BOUNDARY.encode(), "model")
    scanner.feed(body)
    changed = with_value(scanner.head, scanner.span, "llama3.2:latest")
    assert changed == form(("model", "llama3.2:latest"), ("file", (AUDIO, "a.wav")))
    assert with_value(b"abcdef", Span(2, 4), "XY") == b"abXYef"


@pytest.mark.parametrize("headers, name", [
    (b'Content-Disposition: form-data; name="model"', "model"),
    (b"content-disposition:form-data;name=model", "model"),
    (b'Content-Disposition: form-data; filename="a.wav"; name="file"\r\nContent-Type: audio/wav', "file"),
    (b'Content-Disposition: form-data; name="a \\"b\\""', 'a "b"'),
    (b'Content-Type: text/plain\r\nContent-Disposition: form-data; name="prompt"', "prompt"),
    (b'Content-Disposition: attachment; name="model"', None),
    (b'Content-Disposition: form-data; filename="model"', None),
    (b"Content-Type: text/plain", None),
])
def test_part_name(headers, name):
    assert part_name(headers) == name


@pytest.mark.parametrize("content_type, boundary", [
    (f"multipart/form-data; boundary={BOUNDARY}", BOUNDARY.encode()),
    ('multipart/form-data; boundary="a b"', b"a b"),
])
def test_boundary_of(content_type, boundary):
    assert boundary_of(content_type) == boundary


@pytest.mark.parametrize("content_type", [
    None, "", "application/json", "multipart/form-data", "multipart/mixed; boundary=x",
    "multipart/form-data; boundary=" + "x" * 71,
])
def test_a_body_that_is_no_form_is_refused(content_type):
    with pytest.raises(InvalidRequest, match="multipart/form-data"):
        boundary_of(content_type)


@pytest.mark.parametrize("body, model", [
    (b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\n\r\n--B--\r\n', ""),
    (b'a preamble\r\n--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n--B--\r\n', "m"),
    (b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\n--Bx\r\n--B--\r\n', "--Bx"),
    (b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\na\r\n--Bx b\r\n--B--\r\n', "a\r\n--Bx b"),
    (b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nm\r\n--B \r\n', "m"),
    (b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\nno end', None),
])
def test_bodies_written_by_hand(body, model):
    for step in (1, 2, 5, len(body)):
        scanner = FieldScanner(b"B", "model")
        for at in range(0, len(body), step):
            scanner.feed(body[at:at + step])
        found = None if scanner.span is None else bytes(scanner.head[scanner.span.start:scanner.span.end]).decode()
        assert found == model, step
