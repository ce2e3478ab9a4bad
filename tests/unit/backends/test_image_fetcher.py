"""The image fetcher's address check, and the bounds on the image URLs of one request."""

from __future__ import annotations

import pytest

from ollama_proxy.backends.image_fetcher import is_public

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
