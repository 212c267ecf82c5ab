"""Several server "hosts" on one machine: the capacity model of docs/deployment.md, checked.

``python -m bench.hosts`` (as root: it creates network namespaces) runs 1, 2, … ``--hosts``
daphne processes, each in a network namespace of its own (``pgev-hosts-N``, reached over a
veth pair, 10.231.N.2), all fed by one listener through one Redis, the way separate machines
would be. The Redis is a private ``redis-server`` started for the run (so that its CPU is the
events' cost and nobody else's); PostgreSQL is the machine's, reached from the namespaces
through a ``socat`` forwarder on each veth's address. Clients and the writer run in the
root namespace.

For each host count the same number of clients per host receive the same event rate; the
report says what every host delivered, the latency, the CPU of each part, and Redis' CPU
per published event and per event per host (each host is one more subscriber Redis
writes every message to). Everything it creates (namespaces, veths, processes, the bench
database and the Redis) is removed at the end, also after a failure or Ctrl-C.

Loopback and namespaces only: on a 2-core machine this shows where the model bends (the
hosts share the cores), not the throughput of separate machines.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from . import database, servers
from .clients import Workers
from .report import Latency
from .scenarios import merge
from .writer import write

#: Namespace names: ``--netns-prefix`` and the host's number.
NS = "pgev-hosts-{}"
VETH = "pgev-h{}"
SERVER_PORT = 8000  # inside each host's own namespace


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def subnet(n: int) -> tuple[str, str]:
    """(root side, host side) addresses of host ``n``'s veth pair."""
    return f"10.231.{n}.1", f"10.231.{n}.2"


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[None]:
    """``count`` namespaces, each with a veth pair to the root namespace."""
    made: list[int] = []
    try:
        for n in range(1, count + 1):
            outer, inner = subnet(n)
            _ip("netns", "add", NS.format(n))
            made.append(n)
            _ip("link", "add", VETH.format(f"{n}a"), "type", "veth", "peer", "name", VETH.format(f"{n}b"))
            _ip("link", "set", VETH.format(f"{n}b"), "netns", NS.format(n))
            _ip("addr", "add", f"{outer}/24", "dev", VETH.format(f"{n}a"))
            _ip("link", "set", VETH.format(f"{n}a"), "up")
            for args in (
                ("addr", "add", f"{inner}/24", "dev", VETH.format(f"{n}b")),
                ("link", "set", VETH.format(f"{n}b"), "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("netns", "exec", NS.format(n), "ip", *args)
        yield
    finally:
        for n in made:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", VETH.format(f"{n}a"))
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", NS.format(n))


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def _wait_port(host: str, port: int, ns: str | None = None, timeout: float = 30) -> None:
    probe = [sys.executable, "-c", f"import socket; socket.create_connection(({host!r}, {port}), 1).close()"]
    if ns is not None:
        probe = ["ip", "netns", "exec", ns, *probe]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(probe, capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {host}:{port}{f' in {ns}' if ns else ''}")


@dataclass
class Result:
    hosts: int
    clients_per_host: int
    rate: float
    expected: int
    received: int
    duplicates: int
    latency: Latency | None
    per_host: list[int]
    cpu: dict[str, float]
    wall: float
    events: int

    def line(self) -> str:
        redis_us = 1e6 * self.cpu["redis"] / max(self.events, 1)
        servers_pct = ", ".join(f"{100 * self.cpu[f'host{n}'] / self.wall:.0f}" for n in range(1, self.hosts + 1))
        lat = "-" if self.latency is None else f"{self.latency.p50:.1f} / {self.latency.p99:.1f}"
        return (
            f"| {self.hosts} | {self.clients_per_host:,} | {self.rate:g} | {self.received:,} of {self.expected:,}"
            f" | {self.duplicates} | {lat} | {servers_pct} | {100 * self.cpu['listener'] / self.wall:.0f}"
            f" | {redis_us:.1f} | {redis_us / self.hosts:.1f} |"
        )


HEADER = (
    "| hosts | clients per host | events/s | delivered | dup | p50 / p99 ms | daphne CPU % per host"
    " | runlisten CPU % | Redis µs per event | Redis µs per event per host |\n|---|---|---|---|---|---|---|---|---|---|"
)


REDIS_PORT = PG_PORT = 0  # free ports of the root namespace, chosen by main()


def run_one(hosts: int, clients: int, rate: float, seconds: float, url: str, prefix: str) -> Result:
    """One host count: start the servers in their namespaces, drive them, stop them."""
    procs: list[Proc] = []
    workers: list[Workers] = []  # one client process per host: what each host delivered
    try:
        pids: dict[str, list[int]] = {}
        for n in range(1, hosts + 1):
            outer, inner = subnet(n)
            host_url = url.replace("127.0.0.1:5432", f"{outer}:{PG_PORT}")
            env = servers.env_for(
                host_url,
                prefix,
                REDIS_URL=f"redis://{outer}:{REDIS_PORT}/0",
                PGEVENTS_BENCH_LAYER="pgpubsub",
                DJANGO_ALLOWED_HOSTS=inner,
            )
            log = (servers.LOGS / f"host{n}-{os.getpid()}.log").open("w")
            servers.LOGS.mkdir(parents=True, exist_ok=True)
            log = (servers.LOGS / f"host{n}-{os.getpid()}.log").open("w")
            popen = subprocess.Popen(
                ["ip", "netns", "exec", NS.format(n), sys.executable, "-m", "daphne", "-b", inner, "-p",
                 str(SERVER_PORT), "demo_project.asgi:application"],
                cwd=servers.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            procs.append(Proc(f"host{n}", popen))
            _wait_port(inner, SERVER_PORT)
            pids[f"host{n}"] = [popen.pid]
            workers.append(Workers(1))
            workers[-1].connect(inner, SERVER_PORT, "/ws/pgevents/bench/", clients)
        time.sleep(1)
        count = int(rate * seconds)
        monitor = servers.Monitor({**pids, **_service_pids()})
        with monitor:
            acks = write(url, "bench_events", count, rate)
            results = [r for w in workers for r in w.wait(len(acks), timeout=30 + seconds)]
        received, disorder, _, seqnos, times = merge(results)
        per_host = [r.received for r in results]
        cpu = {k: u.cpu for k, u in monitor.usage.items()}
        return Result(
            hosts, clients, rate, count * clients * hosts, received,
            disorder, Latency.of(acks, seqnos, times), per_host, cpu,
            monitor.usage["redis"].wall, count,
        )  # fmt: skip
    finally:
        for w in workers:
            w.close()
        for p in procs:
            p.stop()


_services: dict[str, int] = {}


def _service_pids() -> dict[str, list[int]]:
    return {name: [pid] for name, pid in _services.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hosts", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--hosts", type=int, default=3, help="the most server hosts (runs 1 … N; default 3)")
    p.add_argument("--clients", type=int, default=300, help="clients per host (default 300)")
    p.add_argument("--rate", type=float, default=50, help="events per second (default 50)")
    p.add_argument("--seconds", type=float, default=10, help="seconds per run (default 10)")
    p.add_argument("--netns-prefix", default="pgev-hosts-", help="names of the namespaces (default pgev-hosts-N)")
    args = p.parse_args(argv)
    global NS, REDIS_PORT, PG_PORT
    NS = args.netns_prefix + "{}"
    REDIS_PORT, PG_PORT = servers.free_port(), servers.free_port()
    if os.geteuid() != 0:
        print("bench.hosts creates network namespaces: run it as root", file=sys.stderr)
        return 2
    missing = [tool for tool in ("ip", "redis-server", "socat") if shutil.which(tool) is None]
    if missing:
        print(f"bench.hosts needs {', '.join(missing)}", file=sys.stderr)
        return 2
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    url = "postgresql://postgres@127.0.0.1:5432/pgevents_bench_hosts"
    prefix = f"pgevents-hosts-{os.getpid()}"
    procs: list[Proc] = []
    listener = None
    with namespaces(args.hosts):
        try:
            binds = ["127.0.0.1", *(subnet(n)[0] for n in range(1, args.hosts + 1))]
            redis = subprocess.Popen(
                ["redis-server", "--port", str(REDIS_PORT), "--bind", *binds, "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(Proc("redis", redis))
            _services["redis"] = redis.pid
            for n in range(1, args.hosts + 1):
                outer = subnet(n)[0]
                forward = subprocess.Popen(
                    ["socat", f"TCP-LISTEN:{PG_PORT},bind={outer},fork,reuseaddr", "TCP:127.0.0.1:5432"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                procs.append(Proc(f"pg-forward{n}", forward))
            _wait_port("127.0.0.1", REDIS_PORT)
            env = servers.env_for(url, prefix, REDIS_URL=f"redis://127.0.0.1:{REDIS_PORT}/0",
                                  PGEVENTS_BENCH_LAYER="pgpubsub")  # fmt: skip
            database.create(url)
            database.migrate(url, env)
            database.prepare(url)
            listener = servers.start_listener(env)
            _services["listener"] = listener.proc.pid
            print(HEADER, flush=True)
            for hosts in range(1, args.hosts + 1):
                result = run_one(hosts, args.clients, args.rate, args.seconds, url, prefix)
                print(result.line(), flush=True)
                print(f"<!-- per host delivered: {result.per_host} -->", flush=True)
        finally:
            if listener is not None:
                listener.stop()
            for proc in reversed(procs):
                proc.stop()
            with contextlib.suppress(Exception):
                database.drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
