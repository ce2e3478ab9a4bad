from ollama_proxy.listings import merge


def _entries(*names):
    return [{"name": n, "model": n} for n in names]


def test_merge_keeps_each_name_once_first_server_first():
    merged = merge([_entries("llama3.2:latest", "qwen3:8b"), _entries("Qwen3:8b", "phi4:latest")],
                   lambda model: True)
    assert [m["name"] for m in merged] == ["llama3.2:latest", "qwen3:8b", "phi4:latest"]


def test_merge_leaves_out_models_the_caller_may_not_use():
    merged = merge([_entries("llama3.2:latest", "qwen3:8b"), _entries("deepseek:deepseek-chat")],
                   lambda model: model.startswith(("llama", "deepseek:")))
    assert [m["name"] for m in merged] == ["llama3.2:latest", "deepseek:deepseek-chat"]


def test_merge_of_nothing_is_empty():
    assert merge([], lambda model: True) == []
