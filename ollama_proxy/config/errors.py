"""The one error a configuration that cannot be used raises."""


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""
