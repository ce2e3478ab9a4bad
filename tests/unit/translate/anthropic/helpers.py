"""Values shared by the Anthropic translator tests."""

from __future__ import annotations

PNG = "iVBORw0KGgo="
USER_HI = [{"role": "user", "content": "hi"}]
