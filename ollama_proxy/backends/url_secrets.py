"""Blank the userinfo a backend's URL may carry (``http://ops:s3cret@gpu1:11434``) out of what is shown of it.

One function for every place a backend is described: error messages (and so
every answer and stream frame that carries one), /health, the admin pages and
the logs. The user goes with the password: it is half of the credential.
"""

from __future__ import annotations

import re

# Up to the last "@" of the authority (a password may hold one of its own), which ends at the path, the query,
# a space or a quote: a URL inside a JSON line or a sentence.
_URL_USERINFO = re.compile(r"(://)[^/?#\s\"'<>]+@")


def without_password(text: str) -> str:
    """Return ``text`` with the ``user:password@`` of every URL in it blanked to ``***@``."""
    # Most text holds no URL (every access line passes here): a substring search is many times the regex's speed.
    return _URL_USERINFO.sub(r"\1***@", text) if "://" in text else text
