"""Name who runs the CLI, for the audit trail: the OS user, on which host, over SSH from where."""

from __future__ import annotations

import getpass
import os
import socket

from ollama_proxy.store import Actor

# Set by deploy/ollama-proxy-command, which runs the command as the service's user.
OPERATOR_ENV = "OLLAMA_PROXY_OPERATOR"


def operator(environ=os.environ) -> Actor:
    """The person running this command: the OS user (the one behind sudo, if any) at this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container's): its number
        user = f"uid {os.getuid()}"
    # Who is behind: sudo's caller, or whoever ran the VM's ollama-proxy command (deploy/ollama-proxy-command).
    behind = environ.get("SUDO_USER") or environ.get(OPERATOR_ENV)
    if behind and behind != user:
        user = f"{behind} (as {user})"
    origin = socket.gethostname()
    ssh = environ.get("SSH_CONNECTION", "").split()
    if ssh:
        origin += f", ssh from {ssh[0]}"
    return Actor(user, "cli", origin)
