"""INSTALL.md's VM steps, run as written into a scratch root on this machine.

Every shell line of INSTALL.md's "On a VM" steps is run with bash as root, its paths moved under
the scratch root (`/etc/ollama-proxy` becomes `<root>/etc/ollama-proxy`, and so on) and gunicorn's
port 8080 moved to a free one. The files it installs are moved the same way once installed. What
needs a machine of its own is stood in for, and the transcript says so: apt-get (the packages must
already be there), systemctl and journalctl (the unit's own ExecStart, user, environment file and
directories, read from the installed unit), and nginx's reload (a real nginx on the installed site).
A line that is neither run nor stood in for fails the rehearsal, so INSTALL.md cannot drift from it.
The service user is created on this machine, as `useradd` in step 1 says, and kept.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.nginx import Nginx
from tests.e2e.server import ROOT, die_with_parent, free_port, stop_process, wait_until_listening

INSTALL = ROOT / "INSTALL.md"
SERVICE_USER = "ollama-proxy"
# The absolute paths of the VM that move under the scratch root.
MOVED = ("/etc/ollama-proxy", "/opt/ollama-proxy", "/var/lib/ollama-proxy", "/var/log/ollama-proxy",
         "/etc/systemd/system", "/etc/nginx", "/etc/logrotate.d", "/usr/local/bin", "/root")
# Files installed from the checkout whose contents name those paths.
INSTALLED = ("etc/ollama-proxy/env", "usr/local/bin/ollama-proxy", "etc/systemd/system/ollama-proxy.service",
             "etc/logrotate.d/ollama-proxy")
# What Debian and its packages (nginx, logrotate, systemd) have made before INSTALL.md begins.
DEBIAN_DIRECTORIES = ("root", "opt", "var/lib", "var/log", "etc/systemd/system", "etc/nginx/sites-available",
                      "etc/nginx/sites-enabled", "etc/logrotate.d", "usr/local/bin")
# A root shell's PATH on Debian: python3 is Debian's, as `apt-get install python3` gives it.
DEBIAN_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USERADD_LOCK = Path(tempfile.gettempdir()) / "ollama-proxy-tests-useradd.lock"
LAN_HOST = "proxy.lan"  # what the LAN calls the VM: not a loopback name, so no browser treats it as secure


def working_tree_repository(dest: Path) -> Path:
    """Return a git repository at ``dest`` holding this checkout's files as they are now (committed or not).

    `git clone <this repository>` then installs what is being tested: in CI, a clean clone, the same.
    """
    _git(dest, "init", "-q")
    _copy_working_tree(dest)
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "the checkout under test")
    return dest


def release_repository(dest: Path, commit: str) -> Path:
    """Return a git repository at ``dest`` whose one commit holds ``commit``'s files: a release published once."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"the release of commit {commit}")
    return dest


def publish_working_tree(repository: Path) -> None:
    """Make this checkout's files the repository's next commit: the newer release `git pull` brings."""
    _git(repository, "rm", "-rq", ".")
    _copy_working_tree(repository)
    _git(repository, "add", "-A")
    _git(repository, "commit", "-q", "-m", "the checkout under test")


def _copy_working_tree(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _git(repository: Path, *command: str) -> None:
    subprocess.run(["git", "-c", "user.name=vm", "-c", "user.email=vm@lan", *command], cwd=repository, check=True,
                   capture_output=True)


def install_steps(text: str) -> list[tuple[str, list[str]]]:
    """Return each "### N." step of the "On a VM" section with its shell lines (continuations joined)."""
    section = text.split("## On a VM", 1)[1].split("\n## ", 1)[0]
    return [(title.strip(), shell_lines(body))
            for title, body in re.findall(r"^### (\d+\.[^\n]*)\n(.*?)(?=^### |\Z)", section, flags=re.M | re.S)]


def section_lines(text: str, heading: str) -> list[str]:
    """Return the shell lines of the "## heading" section of a Markdown text."""
    assert f"\n## {heading}\n" in text, f"no section \"## {heading}\""
    return shell_lines(text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0])


def shell_lines(markdown: str) -> list[str]:
    """Return the lines of the ```sh blocks in ``markdown``, continuations joined, comment lines left out."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(re.sub(r"\s+", " ", line.strip()))
    return lines


def doc_line(markdown: str, start: str) -> str:
    """Return the first shell line of ``markdown`` that begins with ``start``: a line the docs give to type."""
    found = [line for line in shell_lines(markdown) if line.startswith(start)]
    assert found, f"the docs no longer have a line beginning `{start}`"
    return found[0]


def without_comment(line: str) -> str:
    """The line as the shell runs it, without a trailing `# ...` comment."""
    return re.sub(r"\s+#\s.*$", "", line)


@dataclass
class Unit:
    """What the installed systemd unit says about starting the service."""

    user: str
    group: str
    workdir: str
    env_file: str
    exec_start: list[str]
    umask: int
    directories: list[str]
    exec_reload: list[list[str]]

    @classmethod
    def read(cls, path: Path) -> Unit:
        settings: dict[str, str] = {}
        reload_lines = []
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                settings.setdefault(key.strip(), value.strip())
                if key.strip() == "ExecReload":
                    reload_lines.append(shlex.split(value.strip()))
        return cls(settings["User"], settings["Group"], settings["WorkingDirectory"], settings["EnvironmentFile"],
                   shlex.split(settings["ExecStart"]), int(settings["UMask"], 8),
                   [f"/var/lib/{settings['StateDirectory']}", f"/var/log/{settings['LogsDirectory']}"], reload_lines)

    def environment(self) -> dict[str, str]:
        """The environment systemd gives the unit's commands: a few of its own, then the EnvironmentFile=."""
        account = pwd.getpwnam(self.user)
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": account.pw_dir, "USER": self.user,
                **environment_file(Path(self.env_file))}


def environment_file(path: Path) -> dict[str, str]:
    """Read an EnvironmentFile= as systemd does: KEY=VALUE lines, one pair of quotes taken off."""
    environ = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        environ[key.strip()] = value
    return environ


def edit_config(vm: VM, upstream_url: str, token: str) -> None:
    """What step 3 asks of the admin: Ollama's address, a token; and plain HTTP on the LAN for the admin page."""
    path = vm.path("/etc/ollama-proxy/config.yaml")
    text = path.read_text()
    edits = {'base_url: "http://localhost:11434"': f'base_url: "{upstream_url}"',
             "generate_tokens: []": f'generate_tokens: [{{name: lan, token: "{token}"}}]'}
    for old, new in edits.items():
        assert old in text, f"config/config.yaml has no `{old}` line any more"
        text = text.replace(old, new, 1)
    path.write_text(text)
    vm.say(f"(the admin edits {path}: service.base_url, auth.generate_tokens)")
    env = vm.path("/etc/ollama-proxy/env")
    commented = "# OLLAMA_PROXY_ADMIN_COOKIE_SECURE=false"
    assert commented in env.read_text(), "deploy/ollama-proxy.env has no line to let the admin page use plain HTTP"
    env.write_text(env.read_text().replace(commented, commented[2:]))
    vm.say(f"(and uncomments {commented[2:]} in {env}: plain HTTP on the LAN)")


@dataclass
class VM:
    """A scratch root standing in for the VM, the running service and nginx, and a transcript."""

    root: Path
    repository: Path
    gunicorn_port: int = field(default_factory=free_port)
    nginx: Nginx | None = None
    service: subprocess.Popen | None = None
    cwd: Path | None = None
    shell_env: dict = field(default_factory=dict)
    placeholders: dict = field(default_factory=dict)  # what a git line's <...> stands for, beside the repository
    transcript: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.root.chmod(0o755)  # the service user walks through it, as through /
        for directory in DEBIAN_DIRECTORIES:
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        (self.root / "etc/nginx/sites-available/default").write_text("# Debian's default site\n")
        (self.root / "etc/nginx/sites-enabled/default").symlink_to("../sites-available/default")
        self.cwd = self.root / "root"  # where the admin stands
        self.service_log = self.root / "service.out"

    # -- moving paths and ports under the scratch root

    def moved(self, text: str) -> str:
        pattern = r"(?<![\w.-])(" + "|".join(re.escape(path) for path in MOVED) + r")(?=[/\s'\";]|$)"
        text = re.sub(pattern, lambda match: f"{self.root}{match.group(1)}", text, flags=re.M)
        return text.replace("127.0.0.1:8080", f"127.0.0.1:{self.gunicorn_port}")

    def path(self, vm_path: str) -> Path:
        return Path(self.moved(vm_path))

    def _move_installed_files(self) -> None:
        for relative in INSTALLED:
            path = self.root / relative
            if path.is_file():
                text = path.read_text()
                if self.moved(text) != text:
                    path.write_text(self.moved(text))

    @property
    def lan_url(self) -> str:
        return f"http://{LAN_HOST}:{self.nginx.port}"

    # -- running lines

    def say(self, text: str) -> None:
        self.transcript.append(text)

    def bash(self, command: str, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``command`` with bash as root where the admin stands, the VM's ollama-proxy first on the PATH."""
        environ = {**os.environ, **self.shell_env, "HOME": str(self.cwd),
                   "PATH": f"{self.root}/usr/local/bin:{DEBIAN_ROOT_PATH}"}
        for name in list(environ):
            if name.startswith("OLLAMA_PROXY_") or name == "VIRTUAL_ENV":
                del environ[name]  # the admin's shell knows nothing of the tests' settings
        return subprocess.run(["bash", "-c", command], cwd=self.cwd, env=environ, input=stdin, text=True,
                              capture_output=True, timeout=timeout)

    def run(self, line: str, stdin: str | None = None, shown: str | None = None) -> str:
        """Run an INSTALL.md line (or a line an admin would type) as written; record it and its answer."""
        command = self.moved(line)
        done = self.bash(command, stdin)
        output = (done.stdout + done.stderr).rstrip()
        self.say(f"# {shown or line}\n{output}" if output else f"# {shown or line}")
        assert done.returncode == 0, f"`{line}` failed with {done.returncode}:\n{output}"
        self._move_installed_files()
        return done.stdout

    def fails(self, line: str) -> subprocess.CompletedProcess:
        """Run a line that must fail; record it."""
        done = self.bash(self.moved(line))
        self.say(f"# {line}\n{(done.stdout + done.stderr).rstrip()}\n(exit status {done.returncode})")
        assert done.returncode != 0, f"`{line}` should have failed:\n{done.stdout}{done.stderr}"
        return done

    def step(self, line: str, upstream_url: str) -> str:
        """Carry out one INSTALL.md line: stand in for what needs a machine of its own, run the rest."""
        command = without_comment(line)
        words = command.split()
        if words[0] == "apt-get":
            return self._packages(words)
        if words[0] == "useradd":
            with _one_at_a_time(USERADD_LOCK):  # two rehearsals at once: one creates the user, the other finds it
                if _user_exists(SERVICE_USER):
                    self.say(f"# {line}\n(stood in for: the user {SERVICE_USER} exists already)")
                    return ""
                return self.run(line)
        if words[0] == "git" and "<" in command:
            for placeholder, value in {"<this repository>": str(self.repository), **self.placeholders}.items():
                command = command.replace(placeholder, value)
            return self.run(command, shown=line)
        if words[0] == "cd" and len(words) == 2:
            self.cwd = self.path(words[1])
            self.say(f"# {line}")
            return ""
        if command == "systemctl daemon-reload":
            self.say(f"# {line}\n(stood in for: the unit is read when the service starts)")
            return ""
        if command == f"systemctl enable --now {SERVICE_USER}":
            return self.start_service(line)
        if command == f"systemctl stop {SERVICE_USER}":
            stop_process(self.service, 30)
            self._service_out.close()
            self.say(f"# {line}\n(stood in for) stopped main PID {self.service.pid}")
            return ""
        if command == f"systemctl start {SERVICE_USER}":
            return self.start_service(line)
        if command == f"systemctl reload {SERVICE_USER}":
            return self.reload_service(line)
        if command == f"systemctl status {SERVICE_USER}":
            assert self.service and self.service.poll() is None, self.service_output()
            self.say(f"# {line}\n(stood in for) active (running), main PID {self.service.pid}")
            return ""
        if words[0] == "journalctl":
            self.say(f"# {line}\n(stood in for) {self.service_output().strip().splitlines()[-1]}")
            return ""
        if command == "nginx -t && systemctl reload nginx":
            return self.start_nginx(line)
        if re.fullmatch(r"TOKEN=\S+", command):
            self.say(f"# {line}\n(the token of the configuration)")
            return ""
        if words[0] == "curl":
            return self.run(self._curl_on_the_lan(command), shown=line)
        return self.run(line)

    def _packages(self, words: list[str]) -> str:
        if words[1] == "update":
            self.say("# apt-get update\n(stood in for: nothing is installed here)")
            return ""
        packages = [word for word in words[2:] if not word.startswith("-")]
        commands = {"python3-venv": "python3", "nginx": "nginx"}
        missing = [name for name in packages
                   if not shutil.which(commands.get(name, name), path=DEBIAN_ROOT_PATH)]
        if "python3-venv" in packages and self.bash("python3 -m venv --help").returncode != 0:
            missing.append("python3-venv")
        assert not missing, f"missing Debian packages: {missing} (scripts/install-test-services.sh)"
        self.say(f"# {' '.join(words)}\n(stood in for: {', '.join(packages)} are installed)")
        return ""

    def _curl_on_the_lan(self, command: str) -> str:
        """Point `http://<vm>` at nginx by the VM's LAN name, resolved as the LAN's DNS would."""
        port = self.nginx.port
        command = command.replace("http://<vm>", f"http://{LAN_HOST}:{port}")
        return command.replace("curl ", f"curl --resolve {LAN_HOST}:{port}:127.0.0.1 ", 1)

    # -- the service and nginx

    def start_service(self, line: str) -> str:
        """Start the service as the installed unit says: its user, directories, environment and command."""
        unit = Unit.read(self.root / "etc/systemd/system/ollama-proxy.service")
        account = pwd.getpwnam(unit.user)
        for directory in unit.directories:  # StateDirectory=, LogsDirectory=: made and given to the user
            path = self.path(directory)
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, account.pw_uid, account.pw_gid)
            path.chmod(0o750)
        self._service_out = open(self.service_log, "ab")  # a start after a stop adds to the log
        self.service = subprocess.Popen(unit.exec_start, cwd=unit.workdir, env=unit.environment(), user=unit.user,
                                        group=unit.group, extra_groups=[], umask=unit.umask,
                                        stdout=self._service_out, stderr=subprocess.STDOUT,
                                        preexec_fn=die_with_parent)
        wait_until_listening(f"http://127.0.0.1:{self.gunicorn_port}", self.service, 120, self.service_log)
        self.say(f"# {line}\n(stood in for) started {' '.join(unit.exec_start)} as {unit.user} "
                 f"in {unit.workdir}, environment from {unit.env_file}")
        return ""

    def reload_service(self, line: str) -> str:
        """Run the installed unit's ExecReload= lines as systemd does: in order, as its user; a failure ends it."""
        unit = Unit.read(self.root / "etc/systemd/system/ollama-proxy.service")
        assert self.service and self.service.poll() is None, "systemctl reload of a service that is not running"
        said = []
        for argv in unit.exec_reload:
            argv = [word.replace("$MAINPID", str(self.service.pid)) for word in argv]
            done = subprocess.run(argv, cwd=unit.workdir, env=unit.environment(), user=unit.user, group=unit.group,
                                  extra_groups=[], umask=unit.umask, capture_output=True, text=True, timeout=600)
            said.append(f"(stood in for) ExecReload={' '.join(argv)}\n{(done.stdout + done.stderr).rstrip()}")
            assert done.returncode == 0, f"`{line}` failed at {argv}:\n{done.stdout}{done.stderr}"
        self.say(f"# {line}\n" + "\n".join(said))
        return ""

    def service_output(self) -> str:
        return self.service_log.read_text(errors="replace") if self.service_log.exists() else ""

    def start_nginx(self, line: str) -> str:
        site = self.root / "etc/nginx/sites-enabled/ollama-proxy"
        assert site.exists(), "the site is not enabled"
        self.nginx = Nginx(self.gunicorn_port, self.root / "nginx-run", site=site.read_text()).start()
        self.say(f"# {line}\n(stood in for) nginx runs {site} on port {self.nginx.port}, "
                 f"reached as {LAN_HOST}")
        return ""

    def stop(self) -> None:
        if self.nginx:
            self.nginx.stop()
        if self.service:
            stop_process(self.service, 30)
            self._service_out.close()


@contextmanager
def _one_at_a_time(lock: Path) -> Iterator[None]:
    """Hold ``lock``, a file every test process on this machine can open, for the block."""
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False

