"""LangChain's OpenAI integration pointed at the proxy, as teams use it."""

from __future__ import annotations

import pytest
import requests
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.e2e.conftest import GENERATE


@tool
def get_weather(city: str) -> str:
    """Return the weather in a city."""
    return "sunny"


@pytest.fixture
def chat(proxy):
    return ChatOpenAI(base_url=proxy.url + "/v1", api_key=GENERATE, model="llama3.2", max_retries=0)


def test_chat_invoke_and_stream(chat, fake):
    fake.script("llama3.2:latest", reply="Hello from the proxy")
    assert chat.invoke("hi").content == "Hello from the proxy"
    assert "".join(part.content for part in chat.stream("hi")) == "Hello from the proxy"


def test_tool_calling_round_trip(chat, fake):
    fake.script("llama3.2:latest", reply="", tool_calls=[
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}])
    with_tools = chat.bind_tools([get_weather])
    history = [HumanMessage("Weather in Oslo?")]
    first = with_tools.invoke(history)
    assert first.tool_calls[0]["name"] == "get_weather" and first.tool_calls[0]["args"] == {"city": "Oslo"}
    fake.script("llama3.2:latest", reply="It is sunny in Oslo.")
    history += [first, ToolMessage(get_weather.invoke(first.tool_calls[0]["args"]),
                                   tool_call_id=first.tool_calls[0]["id"])]
    assert with_tools.invoke(history).content == "It is sunny in Oslo."
    assert fake.last("/api/chat").json["messages"][-1]["tool_name"] == "get_weather"


def test_embeddings(proxy, fake):
    # check_embedding_ctx_length=False: LangChain would otherwise tokenize with tiktoken,
    # which downloads its tables; the proxy takes text.
    embedder = OpenAIEmbeddings(base_url=proxy.url + "/v1", api_key=GENERATE, model="all-minilm",
                                check_embedding_ctx_length=False, max_retries=0)
    vectors = embedder.embed_documents(["a", "b"])
    expected = requests.post(fake.url + "/api/embed", json={"model": "all-minilm", "input": ["a", "b"]}).json()
    for got, want in zip(vectors, expected["embeddings"], strict=True):
        assert got == pytest.approx(want, rel=1e-6)
    assert embedder.embed_query("a") == pytest.approx(expected["embeddings"][0], rel=1e-6)
