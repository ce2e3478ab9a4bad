"""Decide when a single sign-on session's role is to be checked again, and what the person's member row says.

A session holds when its sign-in confirmed the role; past ``admin.oidc.recheck`` it takes the role
and team of the member row (``store.members``) while the provider confirmed them within
``recheck``, ends when the provider no longer vouches for the person, and else asks again
(``blueprints.admin.session_recheck`` does what these decide).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ollama_proxy.store import Member

ADOPT, ENDED, STALE = "adopt", "ended", "stale"


def is_due(checked, now: float, recheck: float) -> bool:
    """Tell whether a session whose role was confirmed at ``checked`` (seconds; None: never) is to be re-checked."""
    return not isinstance(checked, (int, float)) or now - checked >= recheck


def verdict(member: Member | None, now: datetime, recheck: float) -> str:
    """What a session due for a re-check does with the person's member row: ENDED when the provider no longer
    vouches for them, ADOPT its role and team when confirmed within ``recheck``, else STALE (ask again)."""
    if member is not None and member.lost_at is not None:
        return ENDED
    if member is not None and now - member.confirmed_at < timedelta(seconds=recheck):
        return ADOPT
    return STALE
