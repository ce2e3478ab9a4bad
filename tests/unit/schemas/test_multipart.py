"""The proxy reads a transcription's form as Go does: each case is read by the proxy and by real Go.

Every case of the table is run through ``tests/go/formvalue`` (net/http's ParseMultipartForm, built
from source by ``tests/go_reader.py``) and through the proxy's port of it; both must give the
reading the table writes down. Then the proxy's own verdict: the form is accepted with the model
Go reads, or refused where it could be read two ways, and an accepted form, re-encoded, reads the
same to Go again.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.formparser import parse_form_data
from werkzeug.test import encode_multipart

from ollama_proxy.errors import InvalidRequest
from ollama_proxy.schemas.multipart import read_form, write_form
from ollama_proxy.schemas.multipart.goform import GoFormError, query_values, read_go_form
from ollama_proxy.schemas.multipart.mediatype import MediaTypeError, parse_media_type, to_bytes
from tests.go_reader import read_as_go

BOUNDARY = "XyZ-boundary-0123"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
AUDIO = bytes(range(256)) * 40  # 10 KiB, CRLFs and dashes inside
END = f"--{BOUNDARY}--\r\n".encode()
ERROR = "error"  # Go cannot read the form


def part(headers: bytes | str, content: bytes | str) -> bytes:
    """Return one part, CRLF line ends, its header lines given as written."""
    headers = headers.encode() if isinstance(headers, str) else headers
    content = content.encode() if isinstance(content, str) else content
    return f"--{BOUNDARY}\r\n".encode() + headers + b"\r\n\r\n" + content + b"\r\n"


def value(name: str, content: str) -> bytes:
    return part(f'Content-Disposition: form-data; name="{name}"', content)


FILE = part('Content-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav', AUDIO)
MODEL = value("model", "llama3.2")


# (id, body, what Go reads: {name: [values]} and {name: [filenames]}, or ERROR,
#  and what the proxy says: None (it takes the form, with the model Go reads) or the start of its refusal)
CASES = [
    ("plain", MODEL + FILE + END, {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("file first", FILE + MODEL + END, {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("filename decoy before the model", part('Content-Disposition: form-data; name="model"; filename="x"', "llama3.2")
     + value("model", "secret-70b") + FILE + END,
     {"model": ["secret-70b"]}, {"model": ["x"], "file": ["a.wav"]}, "model must be a form value, not a file"),
    ("a model file alone", part('Content-Disposition: form-data; name="model"; filename="m"', "llama3.2") + FILE + END,
     {}, {"model": ["m"], "file": ["a.wav"]}, "model must be a form value, not a file"),
    ("an empty filename makes a value", part('Content-Disposition: form-data; name="model"; filename=""', "llama3.2")
     + FILE + END, {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("a filename's directories are dropped", MODEL + part(
        'Content-Disposition: form-data; name="file"; filename="../up/a.wav"', AUDIO) + END,
     {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("name* overrides name (RFC 2231)", part("Content-Disposition: form-data; name=\"prompt\"; name*=UTF-8''model",
                                             "secret-70b") + FILE + END,
     {"model": ["secret-70b"]}, {"file": ["a.wav"]}, None),
    ("name* percent-encoded, charset in any case", part("Content-Disposition: form-data; name*=uTf-8'en'mo%64el",
                                                         "secret-70b") + FILE + END,
     {"model": ["secret-70b"]}, {"file": ["a.wav"]}, None),
    ("name* in another charset is dropped", part(
        "Content-Disposition: form-data; name=\"prompt\"; name*=iso-8859-1''model", "p") + MODEL + FILE + END,
     {"prompt": ["p"], "model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("name* with a bad escape is dropped", part(
        "Content-Disposition: form-data; name=\"prompt\"; name*=utf-8''mo%zzel", "p") + MODEL + END,
     {"prompt": ["p"], "model": ["llama3.2"]}, {}, None),
    ("name*0 and name*1 are joined", part('Content-Disposition: form-data; name*0="mo"; name*1="del"', "secret-70b")
     + END, {"model": ["secret-70b"]}, {}, None),
    ("name*0* is decoded, name*1 not", part("Content-Disposition: form-data; name*0*=utf-8''m%6F; name*1=del", "m")
     + END, {"model": ["m"]}, {}, None),
    ("a folded header line", part('Content-Disposition: form-data;\r\n name="model"', "secret-70b") + END,
     {"model": ["secret-70b"]}, {}, None),
    ("a folded header, tab and spaces", part('Content-Disposition: form-data; name="model";\r\n\t  filename="x"',
                                            "m") + END, {}, {"model": ["x"]}, "model must be a form value"),
    ("duplicate parameters name nothing", part('Content-Disposition: form-data; name="model"; name="prompt"',
                                               "secret-70b") + MODEL + END,
     {"model": ["llama3.2"]}, {}, "part 1 of the form names no field (its Content-Disposition cannot be read"),
    ("the same parameter twice (later Go takes it)", part('Content-Disposition: form-data; name="model"; name="model"',
                                                          "secret-70b") + MODEL + END,
     {"model": ["llama3.2"]}, {}, "part 1 of the form names no field"),
    ("a quoted-string unescapes only tspecials", value("mo\\del", "a") + part(
        'Content-Disposition: form-data; name="say \\"hi\\" \\\\"', "b") + MODEL + END,
     {"mo\\del": ["a"], 'say "hi" \\': ["b"], "model": ["llama3.2"]}, {}, None),
    (";name= inside a quoted filename", part('Content-Disposition: form-data; filename="a;name=model.wav"; name="file"',
                                             AUDIO) + MODEL + END,
     {"model": ["llama3.2"]}, {"file": ["a;name=model.wav"]}, None),
    ("an escaped quote swallows the name", part('Content-Disposition: form-data; filename="x\\"; name=model"',
                                                "secret-70b") + MODEL + END,
     {"model": ["llama3.2"]}, {}, "part 1 of the form names no field (its Content-Disposition has no name)"),
    ("case of the header and the parameter", part('CONTENT-disposition: Form-Data; NAME="model"', "llama3.2") + END,
     {"model": ["llama3.2"]}, {}, None),
    ("the first Content-Disposition counts", part(
        'Content-Disposition: form-data; name="prompt"\r\nContent-Disposition: form-data; name="model"', "p")
     + MODEL + END, {"prompt": ["p"], "model": ["llama3.2"]}, {}, None),
    ("Unicode white space between parameters", part(b'Content-Disposition: form-data;\xc2\xa0name="model"', "m") + END,
     {"model": ["m"]}, {}, None),
    ("a trailing semicolon", part('Content-Disposition: form-data; name="model";', "m") + END, {"model": ["m"]}, {},
     None),
    ("a part with no disposition", part("Content-Type: text/plain", "secret-70b") + MODEL + END,
     {"model": ["llama3.2"]}, {}, "part 1 of the form names no field (it has no Content-Disposition)"),
    ("an attachment, not form-data", part('Content-Disposition: attachment; name="model"', "secret-70b") + MODEL + END,
     {"model": ["llama3.2"]}, {}, "part 1 of the form names no field (its Content-Disposition is not form-data)"),
    ("a space before the colon", part('Content-Disposition : form-data; name="model"', "secret-70b") + MODEL + END,
     {"model": ["llama3.2"]}, {}, "part 1 of the form has a header whose name is no token"),
    ("a control byte in a header", part('Content-Disposition: form-data; name="model"\r\nContent-Type: a\x0bb', "m")
     + END, {"model": ["m"]}, {}, "part 1 of the form has a control character"),
    ("quoted-printable is decoded by Go", part(
        'Content-Disposition: form-data; name="model"\r\nContent-Transfer-Encoding: Quoted-Printable', "secret=2D70b")
     + END, {"model": ["secret-70b"]}, {}, "part 1 of the form is quoted-printable"),
    ("LF line ends throughout", (MODEL + FILE + END).replace(b"\r\n", b"\n").replace(AUDIO.replace(b"\r\n", b"\n"),
                                                                                      b"RIFF"),
     {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("LF after CRLF delimiters", MODEL + FILE.replace(f"--{BOUNDARY}\r\n".encode(), f"--{BOUNDARY}\n".encode()) + END,
     ERROR, None, "the form cannot be read"),
    ("transport padding after the boundary", MODEL.replace(BOUNDARY.encode() + b"\r\n", BOUNDARY.encode() + b" \t \r\n")
     + FILE + END.replace(b"--\r\n", b"--  \r\n"), {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("a preamble and an epilogue", b"This is a preamble.\r\n--not the boundary\r\n" + MODEL + FILE + END
     + b"an epilogue\r\n" + value("model", "secret-70b"), {"model": ["llama3.2"]}, {"file": ["a.wav"]}, None),
    ("a preamble line over 4096 bytes", b"x" * 5000 + b"\r\n" + MODEL + END, ERROR, None, "the form cannot be read"),
    ("no closing delimiter", MODEL + FILE, ERROR, None, "the form cannot be read"),
    ("the body ends in a part's headers", MODEL + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n'
     .encode(), {"model": ["llama3.2"]}, {}, None),
    ("a stray line after the content is the content's", MODEL.replace(b"llama3.2", b"llama3.2\r\nstray") + END,
     {"model": ["llama3.2\r\nstray"]}, {}, None),
    ("text after a delimiter", MODEL + FILE.replace(BOUNDARY.encode() + b"\r\n", BOUNDARY.encode() + b" text\r\n")
     + END, ERROR, None, "the form cannot be read"),
    ("an empty model runs into the delimiter", part('Content-Disposition: form-data; name="model"', "")[:-2] + END,
     {"model": [""]}, {}, "model is required"),
    ("a delimiter-like line inside a value", value("model", f"a\r\n--{BOUNDARY}x b") + END,
     {"model": [f"a\r\n--{BOUNDARY}x b"]}, {}, None),
    ("model given twice", MODEL + value("model", "secret-70b") + END, {"model": ["llama3.2", "secret-70b"]}, {},
     "model is given 2 times"),
    ("no model", FILE + END, {}, {"file": ["a.wav"]}, "model is required"),
    ("a model that is no UTF-8", value("model", "").replace(b"\r\n\r\n\r\n", b"\r\n\r\n\xff\r\n") + END,
     {"model": ["\udcff"]}, {}, "model is not UTF-8 text"),
]


def _go_base(path: str) -> str:
    """Return Go's filepath.Base of a filename (what FileHeader.Filename holds)."""
    trimmed = path.rstrip("/")
    return trimmed.rsplit("/", 1)[-1] if trimmed else ("/" if path else ".")


def _as_go_bytes(values: dict[str, list[str]]) -> dict[bytes, list[bytes]]:
    return {to_bytes(name): [to_bytes(v) for v in vs] for name, vs in values.items()}


def proxy_reading(content_type: str, body: bytes, query: bytes = b"") -> object:
    """Return the proxy's port of Go's reading in the table's shape: (values, filenames) or ERROR."""
    try:
        form = read_go_form(content_type, body, query)
    except GoFormError:
        return ERROR
    files = {name: [_go_base(p.filename) for p in parts] for name, parts in form.files.items()}
    return _as_go_bytes({name: values for name, values in form.values.items()}), _as_go_bytes(files)


def go_reading(content_type: str, body: bytes, target: str = "/v1/audio/transcriptions") -> object:
    """Return real Go's reading in the table's shape."""
    read = read_as_go(content_type, body, target)
    if "error" in read:
        return ERROR
    return read["form"], {name: [f["filename"] for f in files] for name, files in read["files"].items()}


@pytest.mark.parametrize("body, values, files", [case[1:4] for case in CASES], ids=[c[0] for c in CASES])
def test_the_proxy_reads_a_form_as_go_does(body, values, files):
    expected = ERROR if values == ERROR else (_as_go_bytes(values), _as_go_bytes(files))
    assert go_reading(CONTENT_TYPE, body) == expected
    if values != ERROR and any(p.quoted_printable for p in read_go_form(CONTENT_TYPE, body).parts):
        return  # Go decodes it; the proxy only notes it, and refuses the form (below)
    assert proxy_reading(CONTENT_TYPE, body) == expected


@pytest.mark.parametrize("body, values, refusal", [(c[1], c[2], c[4]) for c in CASES], ids=[c[0] for c in CASES])
def test_a_form_is_taken_with_the_model_go_reads_or_refused(body, values, refusal):
    if refusal is not None:
        with pytest.raises(InvalidRequest) as refused:
            read_form(CONTENT_TYPE, body)
        assert refused.value.message.startswith(refusal) and refused.value.status == 400
        return
    form = read_form(CONTENT_TYPE, body)
    assert form.model == values["model"][0]
    content_type, sent = write_form(form)
    again = read_as_go(content_type, sent)
    assert again["model"] == to_bytes(form.model)
    assert go_reading(content_type, sent) == go_reading(CONTENT_TYPE, body)


@pytest.mark.parametrize("query, body, model, refusal", [
    (b"model=llama3.2", FILE + END, "llama3.2", None),  # FormValue reads the URL query too
    (b"model=secret-70b", MODEL + FILE + END, None, "model is given 2 times"),  # the query's would win
    (b"language=en&prompt=a+b%2Bc", MODEL + value("language", "fr") + FILE + END, "llama3.2", None),
    (b"&&x=&=y", MODEL + END, "llama3.2", None),
    (b"model=a;b", MODEL + END, None, "the form cannot be read as Ollama reads it: invalid semicolon separator"),
    (b"model=%zz", MODEL + END, None, 'the form cannot be read as Ollama reads it: invalid URL escape "%zz"'),
])
def test_the_url_query_is_read_as_go_reads_it(query, body, model, refusal):
    target = "/v1/audio/transcriptions?" + query.decode()
    assert proxy_reading(CONTENT_TYPE, body, query) == go_reading(CONTENT_TYPE, body, target)
    if refusal is not None:
        with pytest.raises(InvalidRequest, match=refusal):
            read_form(CONTENT_TYPE, body, query)
        return
    form = read_form(CONTENT_TYPE, body, query)
    assert form.model == model
    content_type, sent = write_form(form)  # the query's pairs go in the form, first, as Go reads them
    read, again = read_as_go(CONTENT_TYPE, body, target), read_as_go(content_type, sent)
    for field in ("model", "language", "prompt", "response_format", "file"):
        assert again[field] == read[field], field


def test_query_values():
    assert query_values(b"a=1&b=%41+c&a=&d") == [("a", "1"), ("b", "A c"), ("a", ""), ("d", "")]
    with pytest.raises(GoFormError, match="semicolon"):
        query_values(b"a=1;b=2")


@pytest.mark.parametrize("content_type", [
    None, "", "application/json", "multipart/form-data", "multipart/mixed; boundary=x",
    "multipart/form-data; boundary=" + "x" * 71, 'multipart/form-data; boundary=""',
    'multipart/form-data; boundary="a "',
    "multipart/form-data; boundary=a; boundary=b",
])
def test_a_body_that_is_no_form_is_refused(content_type):
    with pytest.raises(InvalidRequest, match="multipart/form-data"):
        read_form(content_type, MODEL + END)


@pytest.mark.parametrize("content_type", [
    'multipart/form-data; boundary="XyZ-boundary-0123"', "Multipart/Form-Data;boundary=XyZ-boundary-0123",
    "multipart/form-data; boundary*=utf-8''XyZ-boundary-0123",
    "multipart/form-data; charset=utf-8; boundary=XyZ-boundary-0123",
])
def test_the_boundary_is_read_as_go_reads_it(content_type):
    assert read_form(content_type, MODEL + END).model == "llama3.2"
    assert go_reading(content_type, MODEL + END) == ({b"model": [b"llama3.2"]}, {})


@pytest.mark.parametrize("header, kind, params", [
    ('form-data; name="model"', "form-data", {"name": "model"}),
    ("FORM-DATA ;  Name = model ", "form-data", {"name": "model"}),
    ('form-data; name="a\\b\\"c"', "form-data", {"name": 'a\\b"c'}),
    ("form-data; name=\"x\"; name*=UTF-8''%E2%9C%93", "form-data", {"name": "\u2713"}),
    ("form-data; name*0=a; name*1*=%62; name*2=c", "form-data", {"name": "abc"}),
    ("multİpart/form-data; boundary=b", "multipart/form-data", {"boundary": "b"}),  # Go lowers İ to i
])
def test_parse_media_type(header, kind, params):
    assert parse_media_type(header) == (kind, params)


@pytest.mark.parametrize("header, error", [
    ("", "no media type"), ("form-data x", "expected slash"), ('form-data; name="a', "invalid media parameter"),
    ("form-data; name=a; NAME=b", "duplicate parameter name"), ("form-data; name=\"a\"b", "invalid media parameter"),
])
def test_parse_media_type_refuses_what_go_refuses(header, error):
    with pytest.raises(MediaTypeError, match=error):
        parse_media_type(header)


def test_a_form_as_a_form_parser_reads_it():
    body = encode_multipart({"file": FileStorage(io.BytesIO(AUDIO), "a.wav"), "model": "qwen3:8b",
                             "prompt": "names: Ann"}, boundary=BOUNDARY)[1]
    form = read_form(CONTENT_TYPE, body)
    environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "REQUEST_METHOD": "POST",
               "CONTENT_TYPE": CONTENT_TYPE}
    _, fields, files = parse_form_data(environ)
    audio = files["file"]
    try:
        assert audio.read() == AUDIO
    finally:
        audio.close()
    assert form.model == fields["model"] == "qwen3:8b"
    assert write_form(form) == (CONTENT_TYPE, body.removeprefix(b"\r\n"))  # werkzeug's empty preamble dropped


def test_a_form_sent_as_clients_write_it_goes_on_byte_for_byte():
    body = value("prompt", "p") + MODEL + FILE + part('Content-Disposition: form-data; name="x"; filename="b"', "")
    assert write_form(read_form(CONTENT_TYPE, body + END)) == (CONTENT_TYPE, body + END)


def test_an_alias_is_sent_as_one_fresh_model_value():
    body = MODEL + FILE + END
    content_type, sent = write_form(read_form(CONTENT_TYPE, body).with_model("llama3.2:latest"))
    assert sent == body.replace(b"llama3.2", b"llama3.2:latest")
    assert read_as_go(content_type, sent)["model"] == b"llama3.2:latest"


def test_names_and_filenames_that_are_not_printable_ascii_go_as_rfc_2231():
    body = (part("Content-Disposition: form-data; name*=utf-8''a%0D%0Ab%22; filename*=utf-8''%E2%9C%93%0A.wav",
                 AUDIO) + MODEL + END)
    content_type, sent = write_form(read_form(CONTENT_TYPE, body))
    assert b"name*=utf-8''a%0D%0Ab%22; filename*=utf-8''%E2%9C%93%0A.wav\r\n" in sent
    go = read_as_go(content_type, sent)
    assert go["files"][b"a\r\nb\""][0]["filename"] == "\u2713\n.wav".encode()
    assert go["files"][b"a\r\nb\""][0]["sha256"] == hashlib.sha256(AUDIO).hexdigest()


def test_a_boundary_found_in_a_value_is_replaced_by_a_fresh_one():
    body = value("prompt", f"x--{BOUNDARY}--") + MODEL + END
    content_type, sent = write_form(read_form(CONTENT_TYPE, body))
    assert BOUNDARY not in content_type and content_type.startswith("multipart/form-data; boundary=proxy-")
    assert read_as_go(content_type, sent)["form"] == {b"prompt": [f"x--{BOUNDARY}--".encode()],
                                                      b"model": [b"llama3.2"]}


def test_a_form_of_more_than_1000_parts_is_refused_as_go_refuses_it():
    body = value("prompt", "p") * 1000 + MODEL + END
    assert go_reading(CONTENT_TYPE, body) == proxy_reading(CONTENT_TYPE, body) == ERROR
