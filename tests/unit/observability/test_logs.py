import json
import logging

from ollama_proxy.config import parse_settings
from ollama_proxy.ledger import LedgerMiddleware, access_record
from ollama_proxy.observability.logs import RedactingFormatter, RepeatLimit, access_logger, secrets_of


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _run(app, environ_extra=None, consume=None):
    logger = logging.getLogger("test.access")
    handler = ListHandler()
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    started = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=headers)

    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/chat", "QUERY_STRING": "token=secret",
               "REMOTE_ADDR": "10.1.2.3", **(environ_extra or {})}
    body = LedgerMiddleware(app, [access_logger(logger)])(environ, start_response)
    chunks = []
    for chunk in body:
        chunks.append(chunk)
        if consume is not None and len(chunks) >= consume:
            break
    body.close()
    return started, chunks, handler.lines


def _streaming_app(environ, start_response):
    record = access_record(environ)
    record.model, record.principal = "llama3.2", "alice"
    start_response("200 OK", [("Content-Type", "application/x-ndjson"), ("X-Request-Id", "spoof")])
    return iter([b"one\n", b"two\n", b"three\n"])


def test_access_line_counts_bytes_and_names_the_token_not_the_secret():
    started, chunks, lines = _run(_streaming_app)
    entry = json.loads(lines[0])
    assert entry["status"] == 200 and entry["bytes"] == 14 and entry["aborted"] is False
    assert entry["model"] == "llama3.2" and entry["token"] == "alice"
    assert entry["path"] == "/api/chat" and entry["client"] == "10.1.2.3"
    assert "secret" not in lines[0]  # the query string is not logged
    ids = [v for k, v in started["headers"] if k == "X-Request-Id"]
    assert ids == [entry["request_id"]] and len(ids[0]) == 32


def test_the_access_line_names_the_end_user_when_a_trusted_front_end_named_one():
    def named_app(environ, start_response):
        access_record(environ).end_user = "ann@lan"
        return _streaming_app(environ, start_response)

    assert "end_user" not in json.loads(_run(_streaming_app)[2][0])
    entry = json.loads(_run(named_app)[2][0])
    assert (entry["token"], entry["end_user"]) == ("alice", "ann@lan")


def test_the_access_line_keeps_ollamas_cached_tokens_apart_from_the_proxys_estimate():
    def placed_app(told, estimated):
        def app(environ, start_response):
            record = access_record(environ)
            record.prompt_tokens, record.cached_tokens, record.cached_tokens_estimated = 4300, told, estimated
            return _streaming_app(environ, start_response)
        return app

    for told, estimated in ((None, 3900), (3990, 3900), (None, None)):  # Ollama 0.33 says nothing of its cache
        entry = json.loads(_run(placed_app(told, estimated))[2][0])
        assert (entry["prompt_tokens"], entry["cached_tokens"], entry["cached_tokens_estimated"]) == (
            4300, told, estimated)


def test_stream_left_early_is_logged_as_aborted_once():
    _, chunks, lines = _run(_streaming_app, consume=1)
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["aborted"] is True and entry["bytes"] == 4


def test_sane_incoming_request_id_is_kept_and_insane_one_replaced():
    _, _, lines = _run(_streaming_app, {"HTTP_X_REQUEST_ID": "nginx-abc.123"})
    assert json.loads(lines[0])["request_id"] == "nginx-abc.123"
    _, _, lines = _run(_streaming_app, {"HTTP_X_REQUEST_ID": "bad id\nwith newline"})
    assert json.loads(lines[0])["request_id"] != "bad id\nwith newline"


def test_redacting_formatter_blanks_secrets_and_url_passwords():
    formatter = RedactingFormatter("%(message)s", ["tok-123", ""])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1,
                               "token tok-123 to http://user:pw@gpu1:11434/api", None, None)
    assert formatter.format(record) == "token *** to http://***@gpu1:11434/api"


def test_secrets_include_tokens_and_provider_api_keys():
    raw = {"auth": {"generate_tokens": ["tok-1"], "manage_tokens": [{"name": "ops", "token": "tok-2"}]},
           "backends": [{"name": "ds", "type": "openai", "preset": "deepseek", "api_key_env": "DS_KEY"},
                        {"name": "lab", "type": "openai", "base_url": "http://lab:8000/v1"},
                        {"name": "gpu2", "type": "ollama", "base_url": "http://gpu2:11434"}]}
    settings = parse_settings(raw, environ={"DS_KEY": "sk-deep"})
    assert sorted(secrets_of(settings)) == ["sk-deep", "tok-1", "tok-2"]


def test_the_access_line_is_written_before_the_other_listeners_read_the_record():
    from ollama_proxy.surfaces import surface_of

    seen = []

    def failing(record):
        raise RuntimeError("listener bug")

    logger = logging.getLogger("test.access.listeners")
    handler = ListHandler()
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    app = LedgerMiddleware(_streaming_app, [access_logger(logger), failing,
                                            lambda record: seen.append((record, handler.lines[:]))],
                           lambda path: surface_of(path).name)
    body = app({"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/messages"}, lambda *a: None)
    list(body)
    body.close()
    (record, lines_then), = seen
    assert record.surface == "anthropic" and record.completed and len(lines_then) == 1


def test_the_access_log_file_appends_redacted_lines_and_follows_a_rotation(tmp_path):
    from ollama_proxy.observability.logs import AccessLogFile

    path = tmp_path / "access.log"
    log = AccessLogFile(str(path), RedactingFormatter("%(message)s", ["sk-secret"]).redact)
    log.info('{"n": 1, "key": "sk-secret"}')
    path.rename(tmp_path / "access.log-1")  # what logrotate does
    log.info('{"n": 2}')
    log.info('{"n": 3}')
    log.close()
    assert (tmp_path / "access.log-1").read_text() == '{"n": 1, "key": "***"}\n'
    assert path.read_text() == '{"n": 2}\n{"n": 3}\n'


def test_a_repeated_warning_is_let_through_a_few_times_a_window_then_said_with_how_many_were_left_out():
    now = [0.0]
    limit = RepeatLimit(burst=3, window=10.0, clock=lambda: now[0])

    def record(msg: str, *args) -> logging.LogRecord:
        return logging.LogRecord("ollama_proxy.scheduler", logging.WARNING, __file__, 1, msg, args, None)
    passed = [limit.filter(record("connection to %s failed", i)) for i in range(100)]
    assert passed == [True] * 3 + [False] * 97
    assert limit.filter(record("another kind of line"))  # counted apart
    again = record("connection to %s failed", 100)
    assert not limit.filter(again) and not limit.filter(again)  # one record, judged once for every handler
    now[0] = 10.0
    later = record("connection to %s failed", 101)
    assert limit.filter(later)
    assert later.getMessage() == "connection to 101 failed (98 more like this in the last 10s left out)"


def test_informational_lines_are_all_written():
    limit = RepeatLimit(burst=1, window=10.0, clock=lambda: 0.0)
    records = [logging.LogRecord("ollama_proxy.relay", logging.INFO, __file__, 1, "the client left (request %s)",
                                 (n,), None) for n in range(10)]
    assert all(limit.filter(record) for record in records)
