"""Which images of an Ollama body are URLs still to fetch, and where they are."""

from __future__ import annotations

import pytest

from ollama_proxy.translate.images import is_image_url, url_holders

URL = "https://example.com/cat.png"


@pytest.mark.parametrize("reference, is_url", [
    (URL, True), ("http://example.com/cat.png", True), ("QUJD", False), ("ftp://example.com/cat.png", False),
    ("data:image/png;base64,QUJD", False), (None, False), (42, False),
])
def test_is_image_url(reference, is_url):
    assert is_image_url(reference) is is_url


@pytest.mark.parametrize("body, holders", [
    ({"messages": [{"role": "user", "images": [URL]}]}, [0]),
    ({"messages": [{"role": "user", "images": ["QUJD"]}, {"role": "user", "images": ["QUJD", URL]}]}, [1]),
    ({"messages": [{"role": "user", "content": URL}]}, []),
    ({"messages": ["not a message", {"images": URL}]}, []),  # a string, not a list of images
    ({"prompt": "see", "images": [URL]}, ["body"]),
    ({"messages": None}, []),
], ids=["one message", "second message", "a URL as text", "malformed", "generate", "no messages"])
def test_url_holders(body, holders):
    expected = [body if h == "body" else body["messages"][h] for h in holders]
    assert [id(h) for h in url_holders(body)] == [id(h) for h in expected]
