"""Answer Ollama's listing and embedding endpoints for a provider's models.

A provider model has no file, digest or quantization: those fields are
empty, as Ollama leaves them for a model it knows little about. What is
known comes from the configuration (context length, capabilities), and the
architecture and family are the provider's name, so a client can tell a
provider model from a local one.
"""

from __future__ import annotations

from ollama_proxy.errors import UpstreamError

#: What a provider model is taken to do when the configuration does not say.
DEFAULT_CAPABILITIES = ("completion", "tools")
NS = 1_000_000_000


def details(provider: str) -> dict:
    """Return the ``details`` object of a provider model."""
    return {"parent_model": "", "format": "", "family": provider, "families": [provider],
            "parameter_size": "", "quantization_level": ""}


def tags_entry(provider: str, model: str, modified_at: str) -> dict:
    """Return one ``/api/tags`` entry, named ``<provider>:<model>``."""
    name = f"{provider}:{model}"
    return {"name": name, "model": name, "modified_at": modified_at, "size": 0, "digest": "",
            "details": details(provider)}


def show_body(provider: str, context_length: int | None, capabilities: tuple[str, ...],
              modified_at: str) -> dict:
    """Return the ``/api/show`` body of a provider model from its configured facts."""
    model_info = {"general.architecture": provider}
    if context_length:
        model_info[f"{provider}.context_length"] = context_length
    return {"modelfile": "", "parameters": "", "template": "", "details": details(provider),
            "model_info": model_info, "capabilities": list(capabilities or DEFAULT_CAPABILITIES),
            "modified_at": modified_at}


def embedding_vectors(answer: dict) -> list[list[float]]:
    """Return the vectors of an ``/embeddings`` answer, in input order."""
    data = answer.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) and "embedding" in item for item in data):
        raise UpstreamError("the provider sent an embeddings answer without data[].embedding")
    return [item["embedding"] for item in sorted(data, key=lambda item: item.get("index", 0))]


def to_ollama_embed(answer: dict, model: str, seconds: float) -> dict:
    """Build ``/api/embed``'s answer from an ``/embeddings`` answer that took ``seconds``."""
    body = {"model": model, "embeddings": embedding_vectors(answer),
            "total_duration": max(0, round(seconds * NS)), "load_duration": 0}
    prompt_tokens = (answer.get("usage") or {}).get("prompt_tokens")
    if prompt_tokens is not None:
        body["prompt_eval_count"] = prompt_tokens
    return body


def to_ollama_embeddings(answer: dict) -> dict:
    """Build the legacy ``/api/embeddings`` answer: one vector."""
    vectors = embedding_vectors(answer)
    return {"embedding": vectors[0] if vectors else []}
