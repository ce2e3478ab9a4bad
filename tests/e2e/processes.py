"""Tell a running proxy's workers apart from outside, through /proc: which holds a connection, which decides."""

from __future__ import annotations

import os
from pathlib import Path


def workers(master_pid: int) -> list[int]:
    """The gunicorn master's children: its workers."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master_pid:
                children.append(int(entry.name))
    return children


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir() if fds.exists() else ():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def worker_serving(master_pid: int, proxy_port: int, client_port: int) -> int | None:
    """The worker holding the TCP connection from ``client_port`` to the proxy."""
    wanted = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(local.rsplit(":", 1)[1], 16) == proxy_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                wanted.add(inode)
    return next((pid for pid in workers(master_pid) if socket_inodes(pid) & wanted), None)


def arbiter(master_pid: int) -> int | None:
    """The worker listening on the scheduler's abstract socket: the one that decides who runs next."""
    listening = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Flags 00010000 is __SO_ACCEPTCON: a listening socket.
        if len(fields) >= 8 and fields[7].startswith("@ollama-proxy-scheduler-") and fields[3] == "00010000":
            listening.add(int(fields[6]))
    return next((pid for pid in workers(master_pid) if socket_inodes(pid) & listening), None)


def lines_to_arbiter(master_pid: int) -> int:
    """How many connections the worker that decides has accepted from the others (a worker opens one as it starts)."""
    deciding = arbiter(master_pid)
    if deciding is None:
        return 0
    sockets = [line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:]]
    mine = socket_inodes(deciding)
    listening = {fields[7] for fields in sockets if len(fields) == 8 and fields[3] == "00010000"
                 and int(fields[6]) in mine}
    return sum(len(fields) == 8 and fields[7] in listening and fields[3] != "00010000" for fields in sockets)
