import yaml

from ollama_proxy.config.declare import declared_settings, is_section
from ollama_proxy.config.loading import DEFAULT_CONFIG
from ollama_proxy.config.settings import Settings

SHIPPED = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
SECTIONS = {top.key: top for top in declared_settings(Settings)}


def test_every_key_of_the_shipped_file_is_a_declared_setting():
    undeclared = [name for name in SHIPPED if name not in SECTIONS]
    for name, values in SHIPPED.items():
        if name in SECTIONS and is_section(SECTIONS[name].annotation):
            declared = {key.key for key in declared_settings(SECTIONS[name].annotation)}
            undeclared += [f"{name}.{key}" for key in values if key not in declared]
    assert undeclared == []


def test_the_shipped_file_shows_each_section_with_the_declared_defaults():
    # config/config.yaml promises: "Every key is optional; the value shown is the default."
    for name, values in SHIPPED.items():
        top = SECTIONS[name]
        if not is_section(top.annotation):
            assert values == list(top.default), name
            continue
        defaults = {key.key: key.default for key in declared_settings(top.annotation)}
        assert values == {
            key: list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key] for key in values}, name


def test_the_settings_object_has_every_section():
    assert list(SECTIONS) == ["auth", "service", "limits", "images", "cors", "logging", "store", "backends", "retry",
                              "routing", "scheduling", "admin", "models", "ratelimit", "metrics", "usage", "budgets",
                              "chat_logs", "token_counts"]
    assert sorted(SHIPPED) == sorted(SECTIONS)
