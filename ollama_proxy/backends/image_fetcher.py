"""Fetch images that clients name by http(s) URL, which Ollama itself refuses.

The proxy fetching a URL for a client is a server-side request forgery risk:
a client could make it read a service on the proxy's own host or LAN. So every
connection (redirects included) resolves the host once, refuses loopback,
private, link-local and other non-public addresses unless the configuration
allows them, and connects to the very address it checked, so a DNS answer
cannot change between the check and the connect. An IPv6 address that carries
an IPv4 one (NAT64, 6to4, Teredo, IPv4-mapped or -compatible) is judged by that
IPv4 address: a network that translates or tunnels it delivers there.

Settings bound the rest: the content type, each image's size, the number of
URLs and the bytes fetched for one request, and the time of each whole fetch (a
deadline, not a timeout per read).
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as urllib3_connection

from ollama_proxy.config import ImageSettings
from ollama_proxy.errors import InvalidRequest, PayloadTooLarge
from ollama_proxy.greenlets import gevent_active
from ollama_proxy.translate.images import is_image_url, url_holders

READ_PIECE = 64 * 1024


# IPv6 prefixes whose last 32 bits are an IPv4 address that a translator or tunnel on the way may
# deliver to: NAT64 (RFC 6052), IPv4-compatible (deprecated, ::/96, :: and ::1 included) and SIIT's
# IPv4-translated (RFC 2765). IPv4-mapped, 6to4 and Teredo have ipaddress properties of their own.
_CARRYING_IPV4 = tuple(map(ipaddress.IPv6Network, ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96")))
# Local-use NAT64 (RFC 8215): local by definition, and where the IPv4 address sits depends on the network.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_public(address: str) -> bool:
    """Say whether an IP address is on the public internet, judging an IPv6 one by the IPv4 it carries."""
    if "%" in address:
        return False  # a zone index (fe80::1%eth0) names a link of this host
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _LOCAL_NAT64:
            return False
        carried = carried_ipv4(ip)
        if carried:
            return all(_is_public_ip(v4) for v4 in carried)
    return _is_public_ip(ip)


def carried_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Return the IPv4 addresses that traffic to ``ip`` reaches on a network that translates or tunnels it."""
    if ip.ipv4_mapped:
        return (ip.ipv4_mapped,)
    if ip.sixtofour:
        return (ip.sixtofour,)
    if ip.teredo:
        return ip.teredo  # (server, client), the client's address de-obfuscated
    if any(ip in prefix for prefix in _CARRYING_IPV4):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF),)
    return ()


def _is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def _checked_address(host: str, port: int) -> tuple[str, int]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidRequest(f"image URL host {host!r} cannot be resolved") from None
    for *_, sockaddr in infos:
        if not is_public(sockaddr[0]):
            raise InvalidRequest(f"image URL host {host!r} resolves to {sockaddr[0]}, a private or local "
                                 "address; the proxy does not fetch from those (images.allow_private)")
    return infos[0][4][0], port


class _GuardedConnectionMixin:
    def _new_conn(self) -> socket.socket:
        address = _checked_address(self._dns_host, self.port)
        # InvalidRequest is not an OSError: urllib3 lets it through untouched.
        return urllib3_connection.create_connection(address, self.timeout, source_address=self.source_address,
                                                    socket_options=self.socket_options)


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class ImageFetcher:
    """Download the images that clients name by URL."""

    def __init__(self, settings: ImageSettings):
        self.settings = settings
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.max_redirects = settings.max_redirects
        adapter = HTTPAdapter() if settings.allow_private else _GuardedAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def fetch(self, url: str, max_bytes: int | None = None) -> bytes:
        """Return the image at ``url`` (up to ``max_bytes``, else images.max_bytes), or raise a client error."""
        max_bytes = self.settings.max_bytes if max_bytes is None else max_bytes
        limit = self.settings.timeout
        deadline = time.monotonic() + limit
        try:
            with _cut_at(limit, url), self.session.get(url, stream=True, timeout=(limit, limit),
                                                       headers={"Accept": "image/*"}) as answer:
                _check_answer(answer, url, max_bytes)
                return _read(answer, url, max_bytes, deadline, limit)
        except requests.TooManyRedirects:
            raise InvalidRequest(f"image URL {url} redirects more than {self.settings.max_redirects} times") from None
        except requests.Timeout:
            raise _too_slow(url, limit) from None
        except requests.RequestException as exc:
            raise InvalidRequest(f"image URL {url} could not be fetched: {type(exc).__name__}") from None


@contextmanager
def _cut_at(seconds: float, url: str) -> Iterator[None]:
    """Give up on a fetch ``seconds`` after it starts, wherever it waits: resolving, connecting, redirected, reading.

    A socket timeout bounds one wait, and a server that sends a byte just before each one would
    hold a fetch for days. gevent (the workers' runtime) can interrupt any wait; without it, the
    socket timeouts and a check between pieces of the body are all there is.
    """
    if not gevent_active():
        yield
        return
    import gevent

    timer = gevent.Timeout(seconds)
    timer.start()
    try:
        yield
    except gevent.Timeout as fired:
        if fired is not timer:
            raise
        raise _too_slow(url, seconds) from None
    finally:
        timer.close()


def _too_slow(url: str, seconds: float) -> InvalidRequest:
    # 400, not 504: the URL is the client's input, and SDKs retry a 5xx, holding more fetches open.
    return InvalidRequest(f"image URL {url} was not fetched within {seconds:g}s (images.timeout)")


def _read(answer: requests.Response, url: str, max_bytes: int, deadline: float, limit: float) -> bytes:
    data = bytearray()
    for piece in answer.iter_content(READ_PIECE):
        data += piece
        if len(data) > max_bytes:
            raise _too_large(url, max_bytes)
        if time.monotonic() > deadline:
            raise _too_slow(url, limit)
    return bytes(data)


def _too_large(url: str, max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"image at {url} is larger than {max_bytes} bytes (images.max_bytes)")


def _check_answer(answer: requests.Response, url: str, max_bytes: int) -> None:
    if answer.status_code != 200:
        raise InvalidRequest(f"image URL {url} answered status {answer.status_code}")
    kind = answer.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if not kind.startswith("image/"):
        raise InvalidRequest(f"image URL {url} is not an image (Content-Type {kind or 'missing'!r})")
    length = answer.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise _too_large(url, max_bytes)


def resolve_image_urls(ollama_body: dict, fetch: Callable[[str, int], bytes], settings: ImageSettings) -> None:
    """Replace every image URL in an Ollama chat or generate body by the fetched image, within the bounds."""
    holders = url_holders(ollama_body)
    if not holders:
        return
    if not settings.fetch_urls:
        raise InvalidRequest("image URLs are not fetched by this proxy (images.fetch_urls): "
                             "send the image as a data: URI")
    count = sum(map(is_image_url, (image for holder in holders for image in holder["images"])))
    if count > settings.max_urls_per_request:
        raise InvalidRequest(f"the request names {count} image URLs; the proxy fetches at most "
                             f"{settings.max_urls_per_request} for one request (images.max_urls_per_request)")
    left = settings.max_total_bytes
    for holder in holders:
        images = []
        for image in holder["images"]:
            if is_image_url(image):
                data = _fetch_within(fetch, image, settings, left)
                left -= len(data)
                image = base64.b64encode(data).decode()
            images.append(image)
        holder["images"] = images


def _fetch_within(fetch: Callable[[str, int], bytes], url: str, settings: ImageSettings, left: int) -> bytes:
    """Fetch an image within its own size bound and what is left of the request's total."""
    try:
        return fetch(url, min(settings.max_bytes, left))
    except PayloadTooLarge:
        if left >= settings.max_bytes:
            raise
        raise PayloadTooLarge(f"the images fetched for this request add up to more than "
                              f"{settings.max_total_bytes} bytes (images.max_total_bytes)") from None
