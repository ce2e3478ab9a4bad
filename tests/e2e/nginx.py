"""A real nginx serving deploy/nginx.conf in front of one gunicorn, and the system tools the deploy uses.

nginx is Debian's package, installed by scripts/install-test-services.sh; the site is a copy
of deploy/nginx.conf whose listen and upstream ports are rewritten to free ones.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.e2e.server import DEPLOY, die_with_parent, free_port, stop_process

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])

MAIN_CONF = """\
user {user} {group};
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    include {dir}/site.conf;
}}
"""


def tool(name: str) -> str:
    path = shutil.which(name, path=SBIN_PATH)
    assert path, f"{name} is missing: scripts/install-test-services.sh installs it (needs root and apt-get)"
    return path


def current_user() -> tuple[str, str]:
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def site_for_test(site: str, listen_port: int, upstream_port: int, log_dir: Path) -> str:
    """Return deploy/nginx.conf listening on 127.0.0.1:listen_port, in front of upstream_port."""
    site, upstreams = re.subn(r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{upstream_port};", site)
    assert upstreams == 1, "deploy/nginx.conf has no `server 127.0.0.1:8080;` upstream any more"
    listens = re.findall(r"^[ \t]*listen[ \t][^;]*;\n", site, flags=re.MULTILINE)
    assert listens, "deploy/nginx.conf has no listen directive"
    site = site.replace(listens[0], f"    listen 127.0.0.1:{listen_port};\n", 1)
    for other in listens[1:]:  # [::]:80 and the like
        site = site.replace(other, "", 1)
    return site.replace("/var/log/nginx/", f"{log_dir}/")


class Nginx:
    """A real nginx in the foreground, serving deploy/nginx.conf (or ``site``) in front of one gunicorn."""

    def __init__(self, upstream_port: int, workdir: Path, site: str | None = None):
        self.upstream_port = upstream_port
        self.site = site if site is not None else (DEPLOY / "nginx.conf").read_text()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._output = None

    def start(self, timeout: float = 15.0) -> Nginx:
        site = site_for_test(self.site, self.port, self.upstream_port, self.workdir)
        (self.workdir / "site.conf").write_text(site)
        user, group = current_user()  # as root, workers run as root and can enter the 0700 tmp dir
        main = self.workdir / "nginx.conf"
        main.write_text(MAIN_CONF.format(dir=self.workdir, user=user, group=group))
        self._output = open(self.workdir / "nginx.out", "wb")
        argv = [tool("nginx"), "-p", f"{self.workdir}/", "-e", str(self.workdir / "error.log"),
                "-c", str(main), "-g", "daemon off;"]
        self.process = subprocess.Popen(argv, stdout=self._output, stderr=subprocess.STDOUT,
                                        preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        stop_process(self.process, 10)
        if self._output:
            self._output.close()

    def logs(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.workdir.glob("*.log"))
                       if path.exists()) + (self.workdir / "nginx.out").read_text(errors="replace")

    def access_lines(self) -> list[str]:
        path = self.workdir / "ollama-proxy.access.log"
        return path.read_text().splitlines() if path.exists() else []
