import pytest

from ollama_proxy.access.api_routes import check_unlisted_route, check_web_use
from ollama_proxy.access.auth import GENERATE, MANAGE, Principal
from ollama_proxy.errors import Forbidden, NotFound


def test_a_route_the_proxy_does_not_list_goes_on_for_a_manage_token_only():
    check_unlisted_route(Principal("admin", MANAGE), "PUT", "/api/experimental/next-thing")
    for principal in (Principal("bob", GENERATE), None):
        with pytest.raises(NotFound, match=r"^no such endpoint: PUT /api/experimental/next-thing$"):
            check_unlisted_route(principal, "PUT", "/api/experimental/next-thing")


@pytest.mark.parametrize("path", ["/api/experimental/web_search", "/api/experimental/web_fetch"])
@pytest.mark.parametrize("scope", [GENERATE, MANAGE])
def test_the_web_tools_need_the_web_permission_whatever_the_scope(path, scope):
    with pytest.raises(Forbidden, match=r"token 'bob' may not use web (search|fetch).*--allow web"):
        check_web_use(Principal("bob", scope), path)
    check_web_use(Principal("ann", scope, web=True), path)


def test_other_routes_need_no_web_permission():
    check_web_use(Principal("bob", GENERATE), "/api/chat")
