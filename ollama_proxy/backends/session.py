"""Share what every backend needs from requests: one pooled session per process, short reasons."""

from __future__ import annotations

import os

import requests
from requests.adapters import HTTPAdapter


class ProcessSession:
    """Hand out one pooled ``requests.Session`` per worker process.

    Not one per thread: under gevent that would be one per greenlet, and no
    connection would ever be reused. A forked worker must not share its
    parent's sockets, so a new process gets a new session.
    """

    def __init__(self, pool_size: int):
        self._pool_size = pool_size
        self._session: requests.Session | None = None
        self._pid = 0

    def get(self) -> requests.Session:
        """Return this process's session."""
        if self._session is None or self._pid != os.getpid():
            session = requests.Session()
            session.trust_env = False  # no proxy variables or .netrc between us and an upstream
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._session, self._pid = session, os.getpid()
        return self._session


_KNOWN_CAUSES = ("Connection refused", "Connection reset by peer", "Connection aborted", "Broken pipe",
                 "Name or service not known", "Temporary failure in name resolution", "No route to host",
                 "Network is unreachable", "Remote end closed connection without response")


def reason(exc: BaseException) -> str:
    """Return the cause of a requests/urllib3 error in a few words, not a repr chain."""
    text = str(exc)
    for cause in _KNOWN_CAUSES:
        if cause in text:
            return cause.lower()
    return text
