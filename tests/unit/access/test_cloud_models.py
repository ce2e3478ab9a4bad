import pytest

from ollama_proxy.access.auth import Principal
from ollama_proxy.access.cloud_models import check_cloud_use, may_use_cloud
from ollama_proxy.errors import Forbidden

LOCAL = Principal("bob", "manage")  # a manage token: every scope, and still no cloud
CLOUD = Principal("ann", "generate", cloud=True)


@pytest.mark.parametrize("principal, model, allowed", [
    (LOCAL, "gpt-oss:120b-cloud", False),
    (LOCAL, "Qwen3-Coder:480B-Cloud", False),
    (LOCAL, "gpt-oss:120b", True),
    (CLOUD, "gpt-oss:120b-cloud", True),
    (None, "gpt-oss:120b-cloud", True),  # no caller named: nothing to judge
])
def test_may_use_cloud(principal, model, allowed):
    assert may_use_cloud(principal, model) is allowed


def test_the_refusal_says_where_the_prompt_goes_and_how_to_allow_it():
    with pytest.raises(Forbidden) as refused:
        check_cloud_use(LOCAL, "gpt-oss:120b-cloud", "big", field="from")
    assert refused.value.status == 403 and refused.value.param == "from"
    assert refused.value.message == (
        "token 'bob' may not use the cloud model 'big' (an alias of 'gpt-oss:120b-cloud'): cloud models send the "
        "prompt to ollama.com, under the Ollama server's account, and need the cloud permission "
        "(`keys create --allow cloud`, or `cloud: true` on a token)")
