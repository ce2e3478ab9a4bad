"""Lock a client out of the admin login after too many failed attempts."""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from ollama_proxy.config import AdminSettings


class LoginGuard:
    """Bound logins per client address, in the rate limiter's shared storage.

    Two counts, each over a window that starts at its first hit and lasts
    ``admin.login_window`` seconds, seen alike by every worker (and, with Redis, every
    instance): failed logins per address and user name (``admin.login_attempts``), so that
    guessing one name's password from one address locks that address out and no other; and
    attempts per address whatever the name (``admin.login_address_attempts``), so that no
    address makes the proxy hash more passwords than that. An attempt is counted before its
    password is hashed: a burst sent at once is bounded too.
    """

    def __init__(self, settings: AdminSettings, storage: Storage):
        self._failures = RateLimitItemPerSecond(settings.login_attempts, settings.login_window)
        self._attempts = RateLimitItemPerSecond(settings.login_address_attempts, settings.login_window)
        self._limiter = FixedWindowRateLimiter(storage)

    def locked(self, client: str, username: str) -> bool:
        """Tell whether ``username`` has failed too often from ``client`` to try again yet."""
        return not self._limiter.test(self._failures, "admin-login", client, username)

    def attempt(self, client: str) -> bool:
        """Count one attempt from ``client``; False when it is over the address's bound."""
        return self._limiter.hit(self._attempts, "admin-login-address", client)

    def retry_after(self, client: str, username: str | None = None) -> int:
        """Seconds until the name's lock (or, for no name, the address's bound) ends."""
        if username is None:
            stats = self._limiter.get_window_stats(self._attempts, "admin-login-address", client)
        else:
            stats = self._limiter.get_window_stats(self._failures, "admin-login", client, username)
        return max(1, round(stats.reset_time - time.time()))

    def failed(self, client: str, username: str) -> None:
        """Count one failed login of ``username`` from ``client``."""
        self._limiter.hit(self._failures, "admin-login", client, username)
