"""Read a request's form with real Go: net/http's ParseMultipartForm and FormValue, as Ollama reads it.

``tests/go/formvalue/main.go`` is built once per version of its source (the binary is cached
under a name holding the source's hash) with the ``go`` that ``scripts/install-go.sh`` installs;
nothing is downloaded. ``read_as_go`` hands it the request and returns what Go read: values and
names as bytes, exactly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "go" / "formvalue" / "main.go"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ollama-proxy" / "go-formvalue"
DEBIAN_GO = Path("/usr/lib/go/bin/go")


class GoMissing(RuntimeError):
    """No Go toolchain here to build the reader with."""


def _go() -> str:
    found = shutil.which("go") or (str(DEBIAN_GO) if DEBIAN_GO.exists() else None)
    if found is None:
        raise GoMissing("no `go` here to build tests/go/formvalue with: run scripts/install-go.sh "
                        "(as root it installs Debian's golang-go)")
    return found


@functools.cache
def go_reader() -> Path:
    """Return the built reader, building it first when this version of its source was never built."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = CACHE / f"formvalue-{digest}"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    # Offline and self-contained: no toolchain or module download, no C compiler.
    env = {**os.environ, "GOCACHE": str(CACHE / "gocache"), "GOPATH": str(CACHE / "gopath"),
           "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "", "CGO_ENABLED": "0"}
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        built = Path(work) / "formvalue"
        done = subprocess.run([_go(), "build", "-o", str(built), str(SOURCE)], env=env, cwd=work,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"go build {SOURCE} failed:\n{done.stdout}{done.stderr}")
        built.replace(binary)  # whole or not at all, for a session running beside this one
    return binary


def http_request(content_type: str | None, body: bytes, target: str = "/v1/audio/transcriptions") -> bytes:
    """Return the bytes of a POST of ``body`` to ``target`` (path and raw query)."""
    head = f"POST {target} HTTP/1.1\r\nHost: ollama\r\nContent-Length: {len(body)}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def _file(entry: dict | None) -> dict | None:
    if entry is None:
        return None
    return {**entry, "filename": entry["filename"].encode("latin-1"),
            "content_type": entry["content_type"].encode("latin-1")}


def _values(form: dict[str, list[str]]) -> dict[bytes, list[bytes]]:
    return {key.encode("latin-1"): [value.encode("latin-1") for value in values] for key, values in form.items()}


def models_run(transcriptions) -> list[str]:
    """Return the model each recorded transcription request asked for, read as Go reads it (unreadable: none)."""
    reads = [read_as_go(r.headers.get("content-type"), r.body, r.path + (f"?{r.query}" if r.query else ""))
             for r in transcriptions]
    return [read["model"].decode(errors="replace") for read in reads if "error" not in read]


def read_as_go(content_type: str | None, body: bytes, target: str = "/v1/audio/transcriptions") -> dict:
    """Return what Go reads from the request: ``{"error": str}``, or the form (see main.go), strings as bytes.

    ``model``, ``response_format``, ``language`` and ``prompt`` are FormValue's; ``form``, ``post_form``
    and ``values`` map names to values; ``files`` maps names to lists of ``{"filename", "size",
    "sha256", "content_type"}``, and ``file`` is FormFile("file")'s (None without one).
    """
    done = subprocess.run([str(go_reader())], input=http_request(content_type, body, target),
                          capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"tests/go/formvalue failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    answer = json.loads(done.stdout)
    if "error" in answer:
        return {"error": answer["error"]}
    return {**{key: answer[key].encode("latin-1") for key in ("model", "response_format", "language", "prompt")},
            **{key: _values(answer[key]) for key in ("form", "post_form", "values")},
            "files": {key.encode("latin-1"): [_file(entry) for entry in entries]
                      for key, entries in answer["files"].items()},
            "file": _file(answer["file"])}


if __name__ == "__main__":  # scripts/test.sh: built before any test, not inside the first request that needs it
    try:
        print(f"go reader: {go_reader()}")
    except GoMissing as missing:
        print(f"go reader: not built: {missing}")
