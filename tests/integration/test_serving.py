"""``manage.py pgevents_serve``: several daphne processes on one port (SO_REUSEPORT), each
serving its share of the clients, every client getting every event; stopped together."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import psutil
import psycopg
import pytest

from tests.support import Client, Stack, run, wait_until


def _children(stack: Stack) -> list[psutil.Process]:
    assert stack.daphne is not None
    parent = psutil.Process(stack.daphne.proc.pid)
    wait_until(lambda: len(parent.children()) == 2, 30, what="two daphne processes")
    return list(parent.children())


def _clients_of(proc: psutil.Process, port: int) -> int:
    return sum(
        1 for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    )


def test_two_processes_on_one_port_both_serve_clients(isolated_db: str, iso_pg: psycopg.Connection) -> None:
    with Stack(isolated_db, server="pgevents_serve") as stack:
        children = _children(stack)

        async def scenario() -> tuple[list[int], list[Any]]:
            async with contextlib.AsyncExitStack() as opened:
                clients = [
                    await opened.enter_async_context(Client.connect(f"{stack.ws}/ws/pgevents/people/"))
                    for _ in range(16)
                ]
                for client in clients:
                    await client.expect("subscribed")
                served = [_clients_of(child, stack.port) for child in children]
                iso_pg.execute("INSERT INTO people (name) VALUES ('to every process')")
                got = [(await client.events(1))[0]["row"]["name"] for client in clients]
                return served, got

        served, got = run(scenario())
        # The kernel spreads connections over both sockets: 16 on one alone has odds of 2 in 65,536.
        assert sum(served) == 16 and all(served), served
        assert got == ["to every process"] * 16
        assert stack.daphne is not None
        stack.daphne.proc.send_signal(signal.SIGTERM)  # the parent alone: it stops its processes
        assert stack.daphne.proc.wait(20) == 128 + signal.SIGTERM
        assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)


def test_when_one_process_dies_the_set_stops_for_the_supervisor(isolated_db: str) -> None:
    with Stack(isolated_db, server="pgevents_serve", listener=False) as stack:
        first, second = _children(stack)
        first.kill()
        assert stack.daphne is not None
        assert stack.daphne.proc.wait(20) == 128 + signal.SIGKILL
        wait_until(lambda: not second.is_running() or second.status() == psutil.STATUS_ZOMBIE, 20, what="the other")
        assert "exited with status -9; stopping the others" in stack.daphne.output()


def test_reuseport_sockets_share_a_port_and_a_bad_address_leaves_nothing_open(monkeypatch: Any) -> None:
    from pgevents.delivery import serving

    first = serving.reuseport_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        second = serving.reuseport_socket("127.0.0.1", port)  # what each daphne process gets
        try:
            assert second.getsockname()[1] == port and second.get_inheritable()
        finally:
            second.close()
    finally:
        first.close()
    with pytest.raises(OSError):
        serving.reuseport_socket("192.0.2.1", 0)  # not an address of this host
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(serving.ReusePortUnavailable, match="no SO_REUSEPORT"):
        serving.reuseport_socket("127.0.0.1", 0)


def test_a_process_that_ignores_sigterm_is_killed_and_wait_reports_the_first_exit() -> None:
    from pgevents.delivery import serving

    processes = serving.Processes("m:app", "127.0.0.1", 0, 2)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    )
    processes.children = [
        subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE),
        subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
    ]
    assert processes.children[0].stdout is not None and processes.children[0].stdout.readline() == b"1\n"
    started = time.monotonic()
    assert processes.wait(poll=0.05) == 3
    assert processes.children[0].returncode == -signal.SIGKILL
    assert time.monotonic() - started < 30
    processes.children[0].stdout.close()
