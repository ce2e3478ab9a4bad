"""The image fetcher's address check, and the bounds on the image URLs of one request."""

from __future__ import annotations

import base64

import pytest

from ollama_proxy.backends.image_fetcher import is_public, resolve_image_urls
from ollama_proxy.config import ImageSettings
from ollama_proxy.errors import InvalidRequest, PayloadTooLarge, ProxyError

ADDRESSES = {
    "public v4": ("8.8.8.8", True),
    "private v4, 10/8": ("10.0.0.1", False),
    "private v4, 172.16/12": ("172.16.0.1", False),
    "private v4, 192.168/16": ("192.168.1.1", False),
    "shared v4, 100.64/10": ("100.64.0.1", False),
    "loopback v4": ("127.0.0.1", False),
    "link-local v4, cloud metadata": ("169.254.169.254", False),
    "unspecified v4": ("0.0.0.0", False),
    "multicast v4": ("224.0.0.1", False),
    "public v6": ("2606:4700:4700::1111", True),
    "loopback v6": ("::1", False),
    "unspecified v6": ("::", False),
    "mapped private": ("::ffff:127.0.0.1", False),
    "mapped public": ("::ffff:8.8.8.8", True),
    "NAT64 of loopback": ("64:ff9b::7f00:1", False),
    "NAT64 of private": ("64:ff9b::a00:1", False),
    "NAT64 of public": ("64:ff9b::808:808", True),
    "local-use NAT64, even of public": ("64:ff9b:1::808:808", False),
    "6to4 of loopback": ("2002:7f00:1::", False),
    "6to4 of private": ("2002:c0a8:101::1", False),
    "6to4 of public": ("2002:808:808::1", True),
    "compatible of loopback": ("::127.0.0.1", False),
    "compatible of private": ("::10.0.0.1", False),
    "compatible of public": ("::8.8.8.8", True),
    "translated of loopback": ("::ffff:0:7f00:1", False),
    "translated of public": ("::ffff:0:808:808", True),
    "Teredo of a loopback client": ("2001:0:808:808:0:0:80ff:fffe", False),
    "Teredo through a private server": ("2001:0:a00:1:0:0:f7f7:fbfb", False),
    "Teredo of a public client": ("2001:0:808:808:0:0:f7f7:fbfb", True),
    "site-local": ("fec0::1", False),
    "link-local v6": ("fe80::1", False),
    "scoped link-local": ("fe80::1%eth0", False),
    "scoped public": ("2606:4700:4700::1111%eth0", False),
    "unique local": ("fd00::1", False),
    "multicast v6, global scope": ("ff0e::1", False),
    "documentation v6": ("2001:db8::1", False),
}


@pytest.mark.parametrize("address, public", ADDRESSES.values(), ids=ADDRESSES.keys())
def test_is_public(address, public):
    assert is_public(address) is public


def settings(**bounds) -> ImageSettings:
    values = {"fetch_urls": True, "allow_private": False, "max_bytes": 100, "max_total_bytes": 250,
              "max_urls_per_request": 3, "timeout": 10.0, "max_redirects": 3, **bounds}
    return ImageSettings(**values)


class Images:
    """A fetch that serves images of given sizes and keeps the limit each fetch was given."""

    def __init__(self, **sizes):
        self.sizes = sizes
        self.asked = []

    def fetch(self, url: str, max_bytes: int) -> bytes:
        self.asked.append((url, max_bytes))
        size = self.sizes[url.rsplit("/", 1)[1]]
        if size > max_bytes:
            raise PayloadTooLarge(f"image at {url} is larger than {max_bytes} bytes (images.max_bytes)")
        return b"i" * size


def chat(*images_per_message) -> dict:
    return {"model": "llava", "messages": [{"role": "user", "content": "see", "images": list(images)}
                                           for images in images_per_message]}


def b64(size: int) -> str:
    return base64.b64encode(b"i" * size).decode()


def test_image_urls_are_replaced_by_the_images_each_within_what_is_left():
    images = Images(a=100, b=100, c=40)
    body = chat(["http://x.lan/a", "QUJD"], ["http://x.lan/b"], [])
    body["images"] = ["http://x.lan/c"]  # generate's own images
    resolve_image_urls(body, images.fetch, settings())
    assert body == {**chat([b64(100), "QUJD"], [b64(100)], []), "images": [b64(40)]}
    assert images.asked == [("http://x.lan/a", 100), ("http://x.lan/b", 100), ("http://x.lan/c", 50)]


@pytest.mark.parametrize("sizes, status, message", [
    ({"a": 101, "b": 1, "c": 1}, 413, "image at http://x.lan/a is larger than 100 bytes (images.max_bytes)"),
    ({"a": 100, "b": 100, "c": 51}, 413,
     "the images fetched for this request add up to more than 250 bytes (images.max_total_bytes)"),
], ids=["one image too large", "together too large"])
def test_fetched_bytes_are_bounded_per_image_and_per_request(sizes, status, message):
    with pytest.raises(ProxyError) as refused:
        resolve_image_urls(chat(["http://x.lan/a", "http://x.lan/b"], ["http://x.lan/c"]), Images(**sizes).fetch,
                           settings())
    assert (refused.value.status, refused.value.message) == (status, message)


def test_a_request_naming_more_image_urls_than_allowed_is_refused_before_any_fetch():
    images = Images(a=1, b=1, c=1, d=1)
    with pytest.raises(InvalidRequest) as refused:
        resolve_image_urls(chat(["http://x.lan/a", "http://x.lan/b"], ["http://x.lan/c", "QUJD", "http://x.lan/d"]),
                           images.fetch, settings())
    assert refused.value.message == ("the request names 4 image URLs; the proxy fetches at most 3 for one request "
                                     "(images.max_urls_per_request)")
    assert images.asked == []


def test_image_urls_are_refused_when_fetching_is_off_and_data_passes():
    with pytest.raises(InvalidRequest, match=r"images\.fetch_urls"):
        resolve_image_urls(chat(["http://x.lan/a"]), Images(a=1).fetch, settings(fetch_urls=False))
    body = chat(["QUJD"])
    resolve_image_urls(body, Images().fetch, settings(fetch_urls=False))
    assert body == chat(["QUJD"])
