"""Time chats through the proxy's app in this one process: ``python -m bench.in_process --tree T --config C``.

Run by ``bench.overhead``, once for the working tree and once for an earlier commit checked out
in ``--tree``: the app is imported from that tree, so nothing from any other may be imported
before it. Gevent-patched as a gunicorn worker is; Flask's test client sends ``--requests``
non-stream chats to the fake upstream the config names, after a warm-up, each read whole and closed
as a server closes it, and prints one JSON object: CPU a request and Python function calls a request
(cProfile's count, the same each run).

With ``--toggle`` the app's scheduler is left out of every other block of 100 requests
(``pool.admission``: a server with scheduling off takes that path), and both are printed, as
``on`` and ``off``. The blocks alternate, so what drifts on the machine falls on both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Why is the sky blue?"}], "stream": False}
BLOCK = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", required=True, help="the source tree to import the proxy from")
    parser.add_argument("--config", required=True, help="the proxy's configuration file")
    parser.add_argument("--token", required=True, help="the token the configuration accepts")
    parser.add_argument("--requests", type=int, default=4000, help="requests timed (each setting, with --toggle)")
    parser.add_argument("--toggle", action="store_true", help="time the scheduler on and off, in turns")
    args = parser.parse_args()
    sys.path.insert(0, args.tree)
    os.environ["OLLAMA_PROXY_CONFIG"] = args.config

    from gevent import monkey
    monkey.patch_all()
    import cProfile
    import pstats

    from ollama_proxy.app import create_app

    app = create_app()
    client = app.test_client()
    pool = app.extensions.get("ollama_proxy.pool")
    admission = getattr(pool, "admission", None)
    headers = {"Authorization": f"Bearer {args.token}"}
    settings = ("off", "on") if args.toggle else ("as built",)

    def chats(setting: str, count: int) -> None:
        if args.toggle:
            pool.admission = admission if setting == "on" else None
        for _ in range(count):
            # Buffered, so the answer is closed as a server closes it: what runs at its close (the ledger's
            # listeners, the slot given back) is counted, and no slot stays held in the scheduler's mirror.
            answer = client.post("/api/chat", json=BODY, headers=headers, buffered=True)
            if answer.status_code != 200:
                raise SystemExit(f"the proxy answered {answer.status_code}: {answer.data[:200]!r}")

    for setting in settings:
        chats(setting, 300)
    blocks = max(1, args.requests // BLOCK)
    cpu = dict.fromkeys(settings, 0.0)
    for block in range(blocks):
        for setting in settings if block % 2 == 0 else reversed(settings):
            started = time.process_time()
            chats(setting, BLOCK)
            cpu[setting] += time.process_time() - started
    figures = {}
    for setting in settings:
        profile = cProfile.Profile()
        profile.enable()
        chats(setting, 200)
        profile.disable()
        figures[setting] = {"in one process, CPU a request, µs": cpu[setting] / (blocks * BLOCK) * 1e6,
                            "in one process, function calls a request": pstats.Stats(profile).total_calls / 200}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
