from limits.storage import MemoryStorage

from ollama_proxy.access.login_guard import LoginGuard
from ollama_proxy.config import parse_settings


def admin_settings(**admin):
    return parse_settings({"admin": admin}, environ={}).admin


def test_the_guard_locks_one_address_and_name_after_the_bound():
    guard = LoginGuard(admin_settings(login_attempts=2, login_window=60), MemoryStorage())
    for _ in range(2):
        assert not guard.locked("10.0.0.1", "admin")
        guard.failed("10.0.0.1", "admin")
    assert guard.locked("10.0.0.1", "admin")
    assert 55 <= guard.retry_after("10.0.0.1", "admin") <= 60
    assert not guard.locked("10.0.0.2", "admin")
    assert not guard.locked("10.0.0.1", "root")


def test_the_guard_bounds_attempts_from_one_address_whatever_the_name():
    guard = LoginGuard(admin_settings(login_attempts=2, login_address_attempts=3, login_window=60), MemoryStorage())
    assert [guard.attempt("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert 55 <= guard.retry_after("10.0.0.1") <= 60
    assert guard.attempt("10.0.0.2")
    assert not guard.locked("10.0.0.1", "admin")  # attempts lock no name: only failures do
