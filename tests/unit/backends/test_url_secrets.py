import pytest

from ollama_proxy.backends.url_secrets import without_password


@pytest.mark.parametrize("url, shown", [
    ("http://gpu1:11434", "http://gpu1:11434"),
    ("http://ops:s3cret@gpu1:11434", "http://***@gpu1:11434"),
    ("https://token@api.example/v1", "https://***@api.example/v1"),
    ("cannot reach http://ops:s3cret@gpu1:11434: connection refused",
     "cannot reach http://***@gpu1:11434: connection refused"),
    ("http://ops:p@ss@gpu1:11434/api", "http://***@gpu1:11434/api"),  # an "@" in the password
    ('{"url":"http://gpu1:11434","by":"ops@example.com"}', '{"url":"http://gpu1:11434","by":"ops@example.com"}'),
    ("http://gpu1:11434/a@b and http://u:p@gpu2", "http://gpu1:11434/a@b and http://***@gpu2"),
    ("http://gpu1:11434?to=a@b", "http://gpu1:11434?to=a@b"),
])
def test_without_password(url, shown):
    assert without_password(url) == shown
