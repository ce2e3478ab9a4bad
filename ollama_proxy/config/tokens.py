"""Declare a token of the file: a plain string, or ``{name, token, rpm, tpm, chat_log, web, cloud, weight, class,
trusted_frontend}``."""

from __future__ import annotations

from dataclasses import dataclass, replace

from marshmallow import ValidationError, fields, validate

from ollama_proxy.config.checks import AT_LEAST_1, NON_EMPTY
from ollama_proxy.config.declare import setting
from ollama_proxy.config.schema import schema_for
from ollama_proxy.scheduler.decisions.fairness import CLASSES, MAX_WEIGHT


@dataclass(frozen=True)
class Token:
    name: str | None = setting(
        None, help="the name the token is logged by; absent: its list and position, as `generate#0`")
    secret: str = setting(
        "", key="token", required=True, validate=NON_EMPTY, repr=False,
        help="what the client sends; make one with "
             "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`; never written to a log")
    rpm: int | None = setting(None, validate=AT_LEAST_1, help="requests per minute (see `ratelimit`); absent: no limit")
    tpm: int | None = setting(
        None, validate=AT_LEAST_1, help="prompt + completion tokens per minute; absent: no limit")
    chat_log: bool | None = setting(
        None, help="log this token's chats (`true`) or not (`false`); absent: as `chat_logs.enabled` says")
    web: bool = setting(
        False, help="may use Ollama's web search and web fetch (`/api/experimental/web_search`, `web_fetch`), "
                    "which make the Ollama server reach the internet")
    cloud: bool = setting(
        False, help="may use cloud models (`*:cloud`, `*-cloud`, as `gpt-oss:120b-cloud`), which send the prompt to "
                    "ollama.com, under the Ollama server's account")
    weight: float = setting(
        1.0, validate=validate.Range(min=0, max=MAX_WEIGHT, min_inclusive=False),
        help="its share of the GPUs against other principals' (above 0, at most 1000; see `scheduling`), "
             "as a key's `--weight`")
    klass: str = setting(
        "interactive", key="class", validate=validate.OneOf(CLASSES),
        help="`batch`: its requests wait behind `interactive` ones (with ageing), as a key's `--class batch`")
    trusted_frontend: bool = setting(
        False, help="a front end that may name the end user each request is for (each user then gets a share of "
                    "their own), as a key's `--trusted-frontend`")


class TokenField(fields.Field):
    """A token: a plain string (named by its index) or ``{name, token, rpm, tpm, chat_log, web, cloud, ...}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value:
            return Token(secret=value)
        if isinstance(value, dict):
            return schema_for(Token)().load(value)
        raise ValidationError("a token is a non-empty string or {name: ..., token: ..., rpm: ..., tpm: ...}")


class TokenList(fields.List):
    """A list of tokens; one without a name is named by its list and position, as ``generate#0``."""

    type_name = "list of tokens"

    def __init__(self, kind: str, **kwargs):
        super().__init__(TokenField(), **kwargs)
        self.kind = kind

    def _deserialize(self, value, attr, data, **kwargs):
        tokens = super()._deserialize(value, attr, data, **kwargs)
        return tuple(replace(token, name=token.name or f"{self.kind}#{i}") for i, token in enumerate(tokens))
