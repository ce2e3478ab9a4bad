"""Start llama.cpp's llama-server with the tiny model that scripts/install-llama-server.sh caches."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

from tests.e2e.server import ROOT, die_with_parent, free_port, stop_process

INSTALL_SCRIPT = ROOT / "scripts" / "install-llama-server.sh"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_TEMPLATE = "Qwen-Qwen2.5-7B-Instruct.jinja"
MODEL_NAME = "smollm2"


def cache_dir() -> Path:
    """Return the directory the install script keeps llama-server, the model and the template in."""
    printed = subprocess.run(["bash", str(INSTALL_SCRIPT), "--dir"], capture_output=True, text=True, check=True)
    return Path(printed.stdout.strip())


def installed_files() -> tuple[Path, Path, Path]:
    """Return the binary, the model and the chat template, or fail saying how to install them."""
    cache = cache_dir()
    files = (cache / "bin" / "llama-server", cache / MODEL_FILE, cache / CHAT_TEMPLATE)
    missing = [str(path) for path in files if not path.exists()]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)}; run scripts/install-llama-server.sh "
                           "(scripts/test.sh does)")
    return files


class LlamaServer:
    """One llama-server process serving the OpenAI API on a free loopback port."""

    def __init__(self, workdir: Path, *, api_key: str, context: int = 4096, threads: int = 2):
        binary, model, template = installed_files()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.log_path = workdir / "llama-server.log"
        self.argv = [str(binary), "--model", str(model), "--alias", MODEL_NAME,
                     "--host", "127.0.0.1", "--port", str(self.port), "--api-key", api_key,
                     "--ctx-size", str(context), "--threads", str(threads), "--parallel", "2",
                     "--no-webui", "--no-warmup", "--jinja", "--chat-template-file", str(template),
                     # Chat and embeddings from one server: SmolLM2 is a causal model, so its
                     # token vectors are pooled by their mean.
                     "--embeddings", "--pooling", "mean"]
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> LlamaServer:
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        # /health answers 503 while the model loads, 200 once it serves.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server did not become healthy within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
