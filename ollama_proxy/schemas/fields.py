"""Fields that check JSON types strictly, as Ollama's Go decoder does."""

from __future__ import annotations

from marshmallow import ValidationError, fields

_JSON_NAMES = {bool: "a boolean", str: "a string", dict: "an object", list: "an array",
               int: "an integer", float: "a number"}


class Typed(fields.Field):
    """Accept a value of one of the given JSON types, unchanged.

    marshmallow's own fields coerce ("true" becomes True, "5" becomes 5). The
    proxy forwards the client's bytes, so a value Ollama would refuse must be
    refused here, with a clearer message.
    """

    def __init__(self, *types: type, **kwargs):
        super().__init__(**kwargs)
        self.types = types

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) and bool not in self.types:
            raise ValidationError(f"must be {self._expected()}")
        if isinstance(value, int) and not isinstance(value, bool) and float in self.types:
            return value
        if not isinstance(value, self.types):
            raise ValidationError(f"must be {self._expected()}")
        return value

    def _expected(self) -> str:
        return " or ".join(_JSON_NAMES.get(t, t.__name__) for t in self.types)


def boolean(**kwargs) -> Typed:
    return Typed(bool, **kwargs)


def string(**kwargs) -> Typed:
    return Typed(str, **kwargs)


def obj(**kwargs) -> Typed:
    return Typed(dict, **kwargs)


