"""The local Ray instance `malseq scan --engine ray` starts (no --address) listens on loopback only.

The CLI runs in a child process, as a user runs it; while it scans, this test reads which TCP sockets
in LISTEN state belong to the CLI and its descendants (the GCS, the raylet, the agents, the Ray workers
and their isolated children) from /proc (`/proc/net/tcp`, `/proc/net/tcp6` and each process's fds),
and asserts that every one is bound to a loopback address. Ray's default on Linux (and the project
rule this checks) is documented in docs/results/speed/ray.md.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                       reason="the ray extra is not installed (pip install -e '.[ray]'; `make test` has it)"),
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux's /proc"),
]

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [str(REPO / "examples" / name) for name in ("npm-env-exfil", "pypi-install-dropper", "pypi-clean-lib")]
TCP_LISTEN = "0A"  # the socket state column of /proc/net/tcp*


@dataclass(frozen=True)
class Listener:
    pid: int
    program: str  # the process's command line, shortened
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int


def _proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp* prints it: 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_address)
    swapped = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(swapped)


def _listening_sockets() -> dict[str, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """Every TCP socket in LISTEN state on this machine, by socket inode."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != TCP_LISTEN:
                continue
            address, port = fields[1].split(":")
            sockets[fields[9]] = (_proc_address(address), int(port, 16))
    return sockets


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def listeners_of_tree(root: int) -> set[Listener]:
    """The listening TCP sockets held by `root` and its descendants."""
    sockets = _listening_sockets()
    held = set()
    for pid in _descendants(root):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        # the program's own name, then its arguments: the install path before it can be long
        # (a clone under a deep folder), and a cut must not fall inside the name; a process that
        # rewrote its title (ray::IDLE) holds the whole line, spaces and all, with no NUL separators
        argv = raw.rstrip("\0").split("\0") if "\0" in raw.rstrip("\0") else raw.split(" ")
        program = " ".join([argv[0].rsplit("/", 1)[-1], *argv[1:]]).strip()[:120]
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in sockets:
                address, port = sockets[target[8:-1]]
                held.add(Listener(pid, program.strip(), address, port))
    return held


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1, as Ray's gRPC servers bind it
    return address.is_loopback


def test_the_proc_reader_sees_a_wildcard_and_a_loopback_listener() -> None:
    """The reader this test relies on: a child listening on 0.0.0.0 and one on 127.0.0.1 are both found."""
    code = ("import socket, sys, time\n"
            "a = socket.socket(); a.bind(('0.0.0.0', 0)); a.listen()\n"
            "b = socket.socket(); b.bind(('127.0.0.1', 0)); b.listen()\n"
            "print(a.getsockname()[1], b.getsockname()[1], flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        wildcard_port, loopback_port = map(int, child.stdout.readline().split())
        found = {(str(x.address), x.port, is_loopback(x.address)) for x in listeners_of_tree(os.getpid())}
        assert ("0.0.0.0", wildcard_port, False) in found
        assert ("127.0.0.1", loopback_port, True) in found
    finally:
        child.kill()
        child.wait()


def test_the_local_instance_of_the_cli_listens_on_loopback_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    home = tmp_path / "home"  # Ray would write ~/.ray/auth_token here if malseq gave it no token
    home.mkdir()
    env = {**os.environ, "HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):
        env.pop(name, None)  # as a user with no Ray settings starts it
    env["RAY_ADDRESS"] = "127.0.0.1:9"  # no cluster there: without --address, malseq starts its own instance
    argv = [sys.executable, "-m", "malseq", "scan", "--engine", "ray", "--jobs", "1", "--out-dir", str(out),
            "--offline", "--no-config", "--format", "json", *EXAMPLES]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    seen: set[Listener] = set()
    try:
        while child.poll() is None:  # sample the instance for as long as the scan runs
            seen |= listeners_of_tree(child.pid)
            time.sleep(0.1)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 1, stderr  # two of the examples are flagged: the instance did its work
    assert json.loads(stdout)["summary"]["scanned_now"] == 3
    programs = " | ".join(sorted({x.program for x in seen}))
    # the servers were seen (not a vacuous pass): the GCS, the raylet and a Ray worker each listen
    assert any("gcs_server" in x.program for x in seen), programs
    assert any("raylet" in x.program for x in seen), programs
    assert any(x.program.startswith("ray::") for x in seen), programs
    exposed = sorted(f"{x.program} on {x.address} port {x.port}" for x in seen if not is_loopback(x.address))
    assert exposed == []
    assert not (home / ".ray").exists()  # the token lived in the environment, not in a file
    assert "Token authentication" not in stderr
