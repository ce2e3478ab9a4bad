"""How long a worker waits between two rounds of membership re-checks."""

from __future__ import annotations

import pytest

from ollama_proxy.identity.recheck_loop import pause_between_rounds


@pytest.mark.parametrize("recheck, pause", [(2, 0.5), (120, 30), (900, 60), (86400, 60)])
def test_a_round_follows_the_last_after_a_quarter_of_recheck_and_a_minute_at_most(recheck, pause):
    assert pause_between_rounds(recheck) == pause
