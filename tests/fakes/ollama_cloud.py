"""The fake Ollama's routes that concern ollama.com: status, recommendations, web search and fetch, the account.

Ollama (server/routes.go) answers them itself or through ollama.com; the fake answers as a
server would whose cloud is on: ``/api/status`` says so, the web tools return made-up
results shaped like ollama.com's, and the account is signed out until a test signs it in
(``account``). What was searched and fetched is in ``web_calls``.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

SIGNIN_URL = "https://ollama.com/connect?name=fake&key=ZmFrZQ"
# The first entries of Ollama's defaultModelRecommendations, as served before its cache refreshes.
RECOMMENDATIONS = [
    {"model": "glm-5.1:cloud", "description": "Reasoning and code generation",
     "context_length": 202_752, "max_output_tokens": 131_072},
    {"model": "qwen3.5", "description": "Reasoning, coding, and visual understanding locally",
     "vram_bytes": 14_000_000_000},
]
DEFAULT_MAX_RESULTS = 5


def json_answer(payload: Any, status: int = 200) -> Response:
    """Answer with JSON as Gin's c.JSON writes it."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, content_type="application/json; charset=utf-8")


class CloudRoutes:
    """Handlers of ollama.com's routes, mixed into FakeOllama (which records each request first)."""

    account: dict | None  # the signed-in user /api/me answers, or None: signed out
    web_calls: list[tuple[str, dict]]  # ("search" or "fetch", the body) of each web call answered

    def reset_cloud(self) -> None:
        self.account = None
        self.web_calls = []

    def _status(self, request: Request, recorded) -> Response:
        """Answer /api/status: the cloud is on (OLLAMA_NO_CLOUD unset)."""
        return json_answer({"cloud": {"disabled": False, "source": "none"}})

    def _recommendations(self, request: Request, recorded) -> Response:
        """Answer /api/experimental/model-recommendations with Ollama's built-in list."""
        return json_answer({"recommendations": RECOMMENDATIONS})

    def _web_search(self, request: Request, recorded) -> Response:
        """Answer /api/experimental/web_search with made-up results for the query."""
        body = self._web_body(recorded)
        if isinstance(body, Response):
            return body
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return json_answer({"error": "query is required"}, 400)
        count = body.get("max_results") or DEFAULT_MAX_RESULTS
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10:
            return json_answer({"error": "max_results must be between 1 and 10"}, 400)
        self.web_calls.append(("search", body))
        return json_answer({"results": [
            {"title": f"{query} ({n + 1})", "url": f"https://example.com/{n + 1}", "content": f"About {query}."}
            for n in range(count)]})

    def _web_fetch(self, request: Request, recorded) -> Response:
        """Answer /api/experimental/web_fetch with a made-up page at the URL."""
        body = self._web_body(recorded)
        if isinstance(body, Response):
            return body
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return json_answer({"error": "url is required"}, 400)
        self.web_calls.append(("fetch", body))
        return json_answer({"title": f"Page at {url}", "content": f"The text of {url}.",
                            "links": [url.rstrip("/") + "/next"]})

    @staticmethod
    def _web_body(recorded) -> dict | Response:
        """Return the web call's JSON object, or Ollama's (then ollama.com's) 400."""
        if not recorded.body.strip():
            return json_answer({"error": "missing request body"}, 400)  # Ollama's own check
        if not isinstance(recorded.json, dict):
            return json_answer({"error": "invalid request body"}, 400)
        return recorded.json

    def _me(self, request: Request, recorded) -> Response:
        """Answer /api/me: the signed-in user, or 401 with where to sign in."""
        if self.account is None:
            return json_answer({"error": "unauthorized", "signin_url": SIGNIN_URL}, 401)
        return json_answer({"plan": "free", **self.account})

    def _signout(self, request: Request, recorded, **_: str) -> Response:
        """Answer /api/signout (and the older DELETE /api/user/keys/<key>): forget the account."""
        if self.account is None:
            return json_answer({"error": "you are not currently signed in"}, 401)
        self.account = None
        return json_answer(None)
