"""Name what can go wrong in the store, apart from the database itself failing."""


class StoreError(Exception):
    """A request to the store cannot be carried out; the message says why."""


class Conflict(StoreError):
    """The name is already taken."""


class Missing(StoreError):
    """No such key, alias or override."""
