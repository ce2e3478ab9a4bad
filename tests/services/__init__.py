"""Real servers (PostgreSQL, Redis) started on loopback for the tests that need them."""


class ServiceNotInstalled(RuntimeError):
    """The server a test needs is not installed on this machine."""
