"""Say who may call a native route the proxy does not list, and who may reach the internet through Ollama's web tools.

Ollama keeps adding routes under ``/api/``, and the proxy forwards every one of
them. The scope each listed route needs is in ``surfaces.OLLAMA_PATHS``: a
generate token may call listings, inference and Ollama's read-only status;
model management and the Ollama server's account on ollama.com (``/api/me``,
``/api/signout``) need a manage token. A route the proxy does not
list (one Ollama added later, or none at all) goes to Ollama for a manage token
only; to any other it is no route at all, a 404, as it was before Ollama had it.

Web search and web fetch (``/api/experimental/web_search``, ``web_fetch``)
make the Ollama server reach the internet on the caller's behalf, so on top of
their scope they need the principal's own ``web`` permission: a managed key's
(``keys create --allow web``) or a token's (``web: true`` in the YAML list).
"""

from __future__ import annotations

from ollama_proxy.errors import Forbidden, NotFound
from ollama_proxy.surfaces import WEB, paths_of

# The routes that reach the internet from the Ollama server, and the tool each is: search, fetch.
WEB_TOOLS = {entry.path: entry.path.rpartition("web_")[2] for entry in paths_of(WEB)}


def check_unlisted_route(principal, method: str, path: str) -> None:
    """Refuse a route the proxy does not list to a principal that may not manage: for it, no such route."""
    if principal is None or not principal.may("manage"):
        raise NotFound(f"no such endpoint: {method} {path}")


def check_web_use(principal, path: str) -> None:
    """Refuse ``principal`` a web tool (``path``) it has no permission for; other paths pass."""
    tool = WEB_TOOLS.get(path)
    if tool is None or principal is None or principal.web:
        return
    raise Forbidden(f"token '{principal.name}' may not use web {tool}: it makes the Ollama server reach the "
                    "internet, and needs the web permission (`keys create --allow web`, or `web: true` on a token)")
