"""A hostile client with a valid but limited key tries to reach past the access policy.

Every test here drives the real server (gunicorn, gevent workers) over the fake Ollama, which
reads request bodies as Ollama's Go decoder does, and checks that what the upstream runs is
exactly what the policy checked, that every bound holds, and that nothing leaks.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.e2e.conftest import ALICE, auth, base_config
from tests.e2e.server import ProxyServer
from tests.e2e.test_hostile import assert_error_shape

# --- A second model key in another case (smuggled model and options) -------------------------



# --- Model access, everywhere the same (management endpoints, aliases, listings, key cache) ---



# --- Behind nginx, the admin login, and /health -----------------------------------------------



# --- What goes to providers and what comes back; usage that cannot be switched off ------------



# --- The usage store, CSV exports and key expiry ----------------------------------------------



# --- Image URLs, the fetcher's address check, and chat logs -----------------------------------

IMAGE_SURFACES = ["openai", "anthropic", "responses"]


def _image_request(surface: str, urls: list[str]) -> tuple[str, str, dict]:
    """Return (path, error dialect, body) of a chat on ``surface`` showing the images at ``urls``."""
    if surface == "openai":
        parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
        return "/v1/chat/completions", "openai", {"model": "llava", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, *parts]}]}
    if surface == "anthropic":
        parts = [{"type": "image", "source": {"type": "url", "url": url}} for url in urls]
        return "/v1/messages", "anthropic", {"model": "llava", "max_tokens": 8, "messages": [{
            "role": "user", "content": [*parts, {"type": "text", "text": "What is this?"}]}]}
    parts = [{"type": "input_image", "image_url": url} for url in urls]
    return "/v1/responses", "openai", {"model": "llava", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"}, *parts]}]}


IMAGE_DEADLINE = 1.0  # images.timeout of the image proxy: seconds for a whole fetch
DRIP_EVERY = 0.2  # seconds between the bytes of a dripping image server: well within one read's timeout


class ImageServer(ThreadingHTTPServer):
    """Serves /<n>.png as n bytes of image, and two that never finish: /drip-head and /drip-body."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ImageHandler)
        self.served: list[str] = []
        self.stopping = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _ImageHandler(BaseHTTPRequestHandler):
    server: ImageServer

    def do_GET(self):
        self.server.served.append(self.path)
        if self.path == "/drip-head":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            self._drip()
            return
        size = 900 if self.path == "/drip-body" else int(self.path.strip("/").removesuffix(".png"))
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.path == "/drip-body":
            self._drip()
        else:
            self.wfile.write(b"\x89PNG" + b"\x00" * (size - 4))

    def _drip(self):
        """Send a byte every DRIP_EVERY seconds until the reader leaves or the test ends."""
        try:
            while not self.server.stopping.wait(DRIP_EVERY):
                self.wfile.write(b"a")
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def image_server():
    server = ImageServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def image_proxy(fake_server, tmp_path_factory):
    """A proxy that fetches from this machine (the image server), with small bounds."""
    config = {**base_config(fake_server.url), "images": {
        "allow_private": True, "timeout": IMAGE_DEADLINE, "max_bytes": 1000, "max_total_bytes": 1500,
        "max_urls_per_request": 2}}
    server = ProxyServer(config, tmp_path_factory.mktemp("image-proxy"), workers=1).start()
    yield server
    server.stop()


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
@pytest.mark.parametrize("path", ["/drip-head", "/drip-body"])
def test_an_image_server_dripping_bytes_is_given_up_at_the_deadline(image_proxy, image_server, fake, surface, path):
    api, dialect, body = _image_request(surface, [image_server.url + path])
    started = time.monotonic()
    answer = requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=IMAGE_DEADLINE + 10)
    waited = time.monotonic() - started
    assert answer.status_code == 400, answer.text[:300]
    assert assert_error_shape(dialect, answer) == (f"image URL {image_server.url}{path} was not fetched within "
                                                   f"{IMAGE_DEADLINE:g}s (images.timeout)")
    assert waited < IMAGE_DEADLINE + 5  # the proxy gave up; a read timeout alone would wait for hours
    assert image_server.served == [path] and fake.requests == []


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_a_request_naming_more_image_urls_than_allowed_is_refused_unfetched(image_proxy, image_server, fake,
                                                                            surface):
    api, dialect, body = _image_request(surface, [f"{image_server.url}/{n}.png" for n in (10, 20, 30)])
    answer = requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=10)
    assert answer.status_code == 400, answer.text[:300]
    assert assert_error_shape(dialect, answer) == ("the request names 3 image URLs; the proxy fetches at most 2 "
                                                   "for one request (images.max_urls_per_request)")
    assert image_server.served == [] and fake.requests == []


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_images_fetched_for_one_request_are_bounded_together(image_proxy, image_server, fake, surface):
    api, dialect, body = _image_request(surface, [f"{image_server.url}/800.png", f"{image_server.url}/750.png"])
    answer = requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=10)
    assert answer.status_code == 413, answer.text[:300]
    assert assert_error_shape(dialect, answer) == ("the images fetched for this request add up to more than "
                                                   "1500 bytes (images.max_total_bytes)")
    assert fake.requests == []
    api, _, body = _image_request(surface, [f"{image_server.url}/800.png", f"{image_server.url}/600.png"])
    requests.post(image_proxy.url + api, json=body, headers=auth(), timeout=10).raise_for_status()
    assert [len(base64.b64decode(image)) for image in fake.last("/api/chat").json["messages"][0]["images"]] == [
        800, 600]


# IPv6 literals that carry a loopback IPv4 address (NAT64, IPv4-compatible, 6to4, SIIT, Teredo) or are
# local by definition (site-local, local-use NAT64). No network here routes them to 127.0.0.1, so
# the proof is the refusal's reason: checked and refused before any connection is tried.
CARRYING_LOOPBACK = ["[64:ff9b::7f00:1]", "[::127.0.0.1]", "[2002:7f00:1::]", "[::ffff:0:7f00:1]",
                     "[2001:0:808:808:0:0:80ff:fffe]", "[fec0::1]", "[64:ff9b:1::7f00:1]"]


@pytest.mark.parametrize("surface", IMAGE_SURFACES)
def test_image_urls_to_ipv6_addresses_carrying_a_private_one_are_refused(proxy, fake, surface):
    port = int(fake.url.rsplit(":", 1)[1])
    for host in CARRYING_LOOPBACK:
        url = f"http://{host}:{port}/x.png"
        path, dialect, body = _image_request(surface, [url])
        answer = requests.post(proxy.url + path, json=body, headers=auth(), timeout=10)
        assert answer.status_code == 400, f"{url}: {answer.status_code} {answer.text[:300]}"
        assert "a private or local address" in assert_error_shape(dialect, answer), url
    assert fake.requests == []


DEEP = 500  # levels of an unknown field: well within what the JSON parser takes


def _deeply_nested(levels: int) -> list:
    return json.loads("[" * levels + "]" * levels)


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/messages", {"model": "llama3.2", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
], ids=["openai", "anthropic"])
def test_a_deeply_nested_unknown_field_is_answered_and_logged(start_proxy, fake, path, body):
    config = base_config(fake.url)
    config["chat_logs"] = {"enabled": True}
    proxy = start_proxy(config, workers=1)
    answer = requests.post(proxy.url + path, json={**body, "x": _deeply_nested(DEEP)}, headers=auth(ALICE),
                           timeout=10)
    assert answer.status_code == 200, answer.text[:300]
    chat_log = proxy.log_dir / "chat.jsonl"
    deadline = time.monotonic() + 10
    while not (chat_log.exists() and chat_log.read_text().strip()):
        assert time.monotonic() < deadline, "no chat log line was written"
        time.sleep(0.05)
    line = json.loads(chat_log.read_text().splitlines()[0])
    assert (line["path"], line["status"]) == (path, 200)
    assert line["request"]["x"] == _deeply_nested(DEEP)
