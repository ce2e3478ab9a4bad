"""Open WebUI in front of the real proxy, on loopback: run by scripts/test-open-webui.sh.

Starts the fake Ollama, the proxy under gunicorn (gevent, 2 workers) with a managed key made
--trusted-frontend and a plain one, and Open WebUI with the proxy as its Ollama: connection 0
with the trusted key, connection 1 (models prefixed "plain.") with the plain key. Then, through
Open WebUI's own API as its browser front end calls it, signs up the first user, lists the
models and chats, whole and streamed; and reads the proxy's access log and usage records for
the key and the end user Open WebUI named. Prints a PASS/FAIL line per check and
"N passed, M failed"; exits 1 on any failure. Every process it starts is stopped at the end.

    .venv/bin/python scripts/open_webui_check.py --venv ~/.cache/ollama-proxy/open-webui-0.12.4/venv
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.e2e.command import cli, create_key  # noqa: E402
from tests.e2e.conftest import base_config  # noqa: E402
from tests.e2e.server import ProxyServer, die_with_parent, free_port, start_server, stop_process, wait_for  # noqa: E402

MODEL = "llama3.2:latest"
TRUSTED, PLAIN = "open-webui", "plain"
results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + ("" if ok or not detail else f": {detail}"), flush=True)
    return ok


def start(argv: list[str], log: Path, env: dict | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            preexec_fn=die_with_parent)


def answers(url: str, process: subprocess.Popen, timeout: float) -> bool:
    def up() -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False
    return wait_for(lambda: process.poll() is not None or up(), timeout) and process.poll() is None


def open_webui_env(venv: Path, data: Path, proxy_url: str, trusted: str, plain: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OLLAMA", "OPENAI", "PYTHON", "VIRTUAL_ENV", "WEBUI", "HF_", "RAG_"))}
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
        DATA_DIR=str(data),
        WEBUI_SECRET_KEY=secrets.token_urlsafe(32),
        WEBUI_AUTH="true",
        # The proxy as Open WebUI's Ollama, twice: with the trusted front-end key, and with the plain one.
        OLLAMA_BASE_URLS=f"{proxy_url};{proxy_url.replace('127.0.0.1', 'localhost')}",
        OLLAMA_API_CONFIGS=json.dumps({"0": {"key": trusted}, "1": {"key": plain, "prefix_id": PLAIN}}),
        ENABLE_OPENAI_API="false",
        ENABLE_FORWARD_USER_INFO_HEADERS="true",
        # Nothing from the internet: OFFLINE_MODE turns off the version check and model updates and
        # sets HF_HUB_OFFLINE; documents are embedded through the proxy, so no embedding model is loaded.
        OFFLINE_MODE="true",
        HF_HUB_OFFLINE="1",
        DO_NOT_TRACK="true",
        RAG_EMBEDDING_ENGINE="ollama",
        RAG_EMBEDDING_MODEL="all-minilm:latest",
        RAG_OLLAMA_BASE_URL=proxy_url,
        RAG_OLLAMA_API_KEY=trusted,
    )
    return env


def chat_text(base: str, token: str, model: str, text: str, stream: bool) -> str:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
    with requests.post(f"{base}/api/chat/completions", json=body, stream=stream, timeout=120,
                       headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status_code != 200:
            raise AssertionError(f"{response.status_code}: {response.text[:300]}")
        if not stream:
            return response.json()["choices"][0]["message"]["content"]
        parts = []
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:]).get("choices", []):
                    parts.append(choice.get("delta", {}).get("content") or "")
        return "".join(parts)


def run(venv: Path, work: Path) -> None:
    ollama_port = free_port()
    fake = start([sys.executable, "-m", "tests.fakes.ollama", "--port", str(ollama_port)], work / "ollama.log")
    proxy = webui = None
    try:
        if not check("fake Ollama answers", answers(f"http://127.0.0.1:{ollama_port}/", fake, 30)):
            return
        proxy = ProxyServer(base_config(f"http://127.0.0.1:{ollama_port}"), work / "proxy", workers=2)
        trusted = create_key(proxy, "--name", TRUSTED, "--trusted-frontend")
        plain = create_key(proxy, "--name", PLAIN)
        start_server(proxy)
        check("proxy (gunicorn, gevent, 2 workers) answers /health",
              requests.get(f"{proxy.url}/health", timeout=10).status_code == 200 and len(proxy.worker_pids()) == 2)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = open_webui_env(venv, work / "open-webui-data", proxy.url, trusted, plain)
        webui = start([str(venv / "bin" / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                      work / "open-webui.log", env, cwd=work)
        if not check("Open WebUI starts offline", answers(f"{base}/health", webui, 600),
                     f"see {work / 'open-webui.log'}"):
            return

        email = "ada@example.com"
        signup = requests.post(f"{base}/api/v1/auths/signup", timeout=60,
                               json={"name": "Ada", "email": email, "password": "correct-horse-battery"})
        user = signup.json() if signup.status_code == 200 else {}
        if not check("sign up the first user (admin)", user.get("role") == "admin" and bool(user.get("token")),
                     f"{signup.status_code}: {signup.text[:300]}"):
            return
        token, user_id = user["token"], user["id"]

        listing = requests.get(f"{base}/api/models", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        models = {m["id"]: m for m in listing.json().get("data", [])} if listing.status_code == 200 else {}
        check("GET /api/models lists llama3.2 from the proxy, once per key",
              models.get(MODEL, {}).get("owned_by") == "ollama" and f"{PLAIN}.{MODEL}" in models,
              f"{listing.status_code}: {sorted(models) or listing.text[:300]}")

        for stream in (False, True):
            text = f"hello from Open WebUI, {'streamed' if stream else 'whole'}"
            try:
                got = chat_text(base, token, MODEL, text, stream)
            except (AssertionError, requests.RequestException, ValueError, KeyError) as error:
                got = f"error {error}"
            check(f"chat through Open WebUI, {'streamed' if stream else 'not streamed'}: 'You said: ...'",
                  got == f"You said: {text}", repr(got))
        try:
            got = chat_text(base, token, f"{PLAIN}.{MODEL}", "hello with the plain key", False)
        except (AssertionError, requests.RequestException, ValueError, KeyError) as error:
            got = f"error {error}"
        check("chat through Open WebUI's plain-key connection", got == "You said: hello with the plain key", repr(got))

        def lines(key: str) -> list[dict]:
            entries = [json.loads(line) for line in proxy.access_lines()]
            return [e for e in entries if e.get("token") == key and e["path"] == "/api/chat" and e["status"] == 200]

        wait_for(lambda: len(lines(TRUSTED)) >= 2 and len(lines(PLAIN)) >= 1, 10)
        trusted_lines, plain_lines = lines(TRUSTED), lines(PLAIN)
        check("access log: both chats came with the trusted front-end key and name the user's id",
              len(trusted_lines) == 2 and all(e.get("end_user") == user_id for e in trusted_lines),
              f"user {user_id}, lines {trusted_lines}")
        listed = [json.loads(line) for line in proxy.access_lines()]
        check("access log: Open WebUI listed the models with the trusted key",
              any(e["path"] == "/api/tags" and e["token"] == TRUSTED and e["status"] == 200 for e in listed))
        check("access log: the plain key's chat names no end user (headers ignored)",
              len(plain_lines) == 1 and "end_user" not in plain_lines[0], f"lines {plain_lines}")

        def usage() -> list[dict]:
            done = cli(proxy, "usage", "--key", TRUSTED, "--with-end-user", "--format", "json")
            return [row for row in json.loads(done.stdout or "[]") if row.get("model") == MODEL]

        wait_for(lambda: len(usage()) >= 2, 15)
        rows = usage()
        check("usage records: the trusted key's chats name the end user",
              len(rows) == 2 and all(row.get("end_user") == user_id for row in rows), f"rows {rows}")
    finally:
        stop_process(webui, 30)
        if proxy is not None and proxy.process is not None:
            proxy.stop()
        stop_process(fake, 10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, required=True, help="the venv Open WebUI is installed in")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="open-webui-check-"))
    try:
        run(args.venv.resolve(), work)
    except Exception as error:  # a step that broke: a failed check, with the reason
        check("the check ran to its end", False, f"{type(error).__name__}: {error}")
    failed = sum(1 for _, ok, _ in results if not ok)
    if failed:
        print(f"logs kept in {work}", flush=True)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
