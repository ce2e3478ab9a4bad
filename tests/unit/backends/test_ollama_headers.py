from ollama_proxy.backends.ollama_headers import downstream_headers, upstream_headers


def test_upstream_headers_drop_credentials_origin_and_hop_by_hop():
    sent = upstream_headers([
        ("Host", "proxy.lan"), ("Authorization", "Bearer t"), ("x-api-key", "t"), ("Cookie", "c=1"),
        ("Origin", "http://evil"), ("Referer", "http://evil/page"), ("Connection", "keep-alive"),
        ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("TE", "trailers"),
        ("Content-Length", "12"), ("Accept-Encoding", "gzip"), ("Proxy-Authorization", "x"),
        ("Content-Type", "application/json"), ("User-Agent", "ollama-python/0.6"), ("X-Custom", "kept"),
    ])
    assert sent == {"Content-Type": "application/json", "User-Agent": "ollama-python/0.6", "X-Custom": "kept",
                    "Accept-Encoding": "identity"}


def test_downstream_headers_keep_the_message_and_leave_framing_and_cors_to_the_proxy():
    kept = downstream_headers([
        ("Content-Type", "application/x-ndjson"), ("Date", "x"), ("Server", "x"), ("Content-Length", "9"),
        ("Transfer-Encoding", "chunked"), ("Connection", "close"), ("Access-Control-Allow-Origin", "*"),
        ("Content-Encoding", "gzip"), ("X-Upstream", "1"),
    ])
    assert kept == {"Content-Type": "application/x-ndjson", "X-Upstream": "1"}
