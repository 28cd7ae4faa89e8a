"""Hosts of our own on this machine: network namespaces joined by veth links, each a "host" with its own address, its
own /etc/hosts (which `ip netns exec` mounts over the machine's) and its own hostname (a UTS namespace of each
process started in it), so that torchrun's several-machine commands run as written and their traffic goes only
between these namespaces. Root is needed; `available()` says why not where they cannot be made.

    with Hosts(["host0", "host1"]) as hosts:
        p = hosts.popen(0, ["torchrun", ...], cwd=...)

Two hosts share one veth pair; three or more a bridge in a namespace of its own. Whatever happens, leaving the
block kills every process left in the namespaces and removes them, their links and their hosts files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

SUBNET = "10.77.{}.{}"  # 10.77.<hosts' number>.<host + 1>/24


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def available() -> str | None:
    """None where namespaces can be made here, else why not (for a skip)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on this machine"
    name = f"w2v-probe-{os.getpid()}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


class Hosts:
    """Namespaces named w2v-<pid>-<i>, the i-th host at SUBNET's address i + 1, its hostname names[i]."""

    def __init__(self, names: list[str]):
        self.names = names
        self.tag = f"w2v{os.getpid() % 100000}"  # interface names hold 15 characters at most
        self.spaces = [f"{self.tag}-{i}" for i in range(len(names))]
        self.net = os.getpid() % 250 + 1
        self.addresses = [SUBNET.format(self.net, i + 1) for i in range(len(names))]
        self.switch = f"{self.tag}-sw" if len(names) > 2 else None

    def __enter__(self) -> Hosts:
        try:
            self._make()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _make(self) -> None:
        hosts = "127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for a, n in zip(self.addresses, self.names))
        for space in self.spaces + ([self.switch] if self.switch else []):
            _ip("netns", "add", space)
            _ip("-n", space, "link", "set", "lo", "up")
        for space in self.spaces:
            folder = Path("/etc/netns") / space
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(hosts)
        if self.switch is None:  # two hosts: one link
            _ip("link", "add", f"{self.tag}a", "netns", self.spaces[0], "type", "veth", "peer", "name", f"{self.tag}b",
                "netns", self.spaces[1])
            links = [f"{self.tag}a", f"{self.tag}b"]
        else:  # a bridge in the switch's namespace, a link from each host to it
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            links = []
            for i, space in enumerate(self.spaces):
                _ip("link", "add", f"{self.tag}h{i}", "netns", space, "type", "veth", "peer", "name", f"p{i}",
                    "netns", self.switch)
                _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0")
                _ip("-n", self.switch, "link", "set", f"p{i}", "up")
                links.append(f"{self.tag}h{i}")
        self.links = links
        for space, link, address in zip(self.spaces, links, self.addresses):
            _ip("-n", space, "addr", "add", f"{address}/24", "dev", link)
            _ip("-n", space, "link", "set", link, "up")

    def popen(self, host: int, cmd: list[str], **kw) -> subprocess.Popen:
        """cmd in host's namespace, under its hostname, in a session of its own (for killpg)."""
        inner = ["unshare", "--uts", "sh", "-c", f'hostname {self.names[host]} && exec "$@"', "sh", *map(str, cmd)]
        return subprocess.Popen(["ip", "netns", "exec", self.spaces[host], *inner], start_new_session=True, **kw)

    def torchrun(self, folder: Path, args: list, static: bool = True, args_of: dict | None = None,
                 env: dict | None = None, stdout=subprocess.PIPE) -> list[subprocess.Popen]:
        """docs/torchrun.md's command for several machines, `-m w2v_nce ARGS` (args_of[h]: host h's own), one
        process on each host, host h in folder/h<h>: with static=True the --master-addr rendezvous, else c10d's;
        host 0 is the address. Their stderr piped, as text."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # free here, and so in every namespace (each has its own ports)
        meet = (["--master-addr", self.names[0], "--master-port", str(port)] if static else
                ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"{self.names[0]}:{port}"])
        procs = []
        for h in range(len(self.names)):
            (folder / f"h{h}").mkdir(parents=True, exist_ok=True)
            given = (args_of or {}).get(h, args)
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(len(self.names)), "--node-rank",
                   str(h), "--nproc-per-node", "1", *meet, "-m", "w2v_nce", *map(str, given)]
            procs.append(self.popen(h, cmd, cwd=folder / f"h{h}", stdout=stdout, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, **(env or {})}))
        return procs

    def kill(self, host: int) -> None:
        """kill -9 every process in the host's namespace."""
        pids = _ip("netns", "pids", self.spaces[host], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    def cut(self, host: int) -> None:
        """The host's link down: its packets stop, and no reset reaches the others."""
        _ip("-n", self.spaces[host], "link", "set", self.links[host], "down")

    def shape(self, delay: str = "1ms", rate: str = "1gbit") -> str:
        """Every host's link slowed on each end: netem's `delay` each way and `rate`; where the kernel has no netem,
        a token bucket at `rate` and no delay. Returns what it set."""
        for space, link in zip(self.spaces, self.links):
            netem = subprocess.run(["tc", "-n", space, "qdisc", "replace", "dev", link, "root", "netem", "delay",
                                    delay, "rate", rate], capture_output=True, text=True)
            if netem.returncode != 0:
                subprocess.run(["tc", "-n", space, "qdisc", "replace", "dev", link, "root", "tbf", "rate", rate,
                                "burst", "256kb", "latency", "50ms"], check=True, capture_output=True)
        return f"netem delay {delay} rate {rate}" if netem.returncode == 0 else f"tbf rate {rate} (no netem here)"

    def mend(self, host: int) -> None:
        """The host's link up again."""
        _ip("-n", self.spaces[host], "link", "set", self.links[host], "up")

    def __exit__(self, *exc) -> None:
        for i in range(len(self.spaces)):
            self.kill(i)
        for space in self.spaces + ([self.switch] if self.switch else []):
            _ip("netns", "del", space, check=False)  # removes its links too
            shutil.rmtree(Path("/etc/netns") / space, ignore_errors=True)
