"""A server process's runtime: one per event loop, forgotten once its loop is closed."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer

from pgevents.delivery import runtime
from pgevents.store.memory import MemoryLog


def test_each_loop_has_its_own_runtime_and_closed_loops_are_forgotten() -> None:
    async def one() -> runtime.Runtime:
        rt = runtime.install(runtime.Runtime(InMemoryChannelLayer(), reader=MemoryLog()))
        assert runtime.current() is rt and runtime.get_hub() is rt.hub
        assert runtime.hubs() == [rt.hub]  # the runtimes of closed loops are not counted
        assert asyncio.get_running_loop() in runtime._runtimes and len(runtime._runtimes) == 1
        return rt

    first = asyncio.run(one())
    second = asyncio.run(one())
    assert first is not second and first.hub.reader is not second.hub.reader
    assert runtime.hubs() == []


def test_start_runs_the_reporter_the_pipeline_watchdog_and_the_wired_in_work() -> None:
    started: list[object] = []

    def starter(layer: object) -> runtime.Started | None:
        started.append(layer)
        return None

    async def body() -> None:
        layer = InMemoryChannelLayer()
        rt = runtime.Runtime(layer, reader=MemoryLog())
        runtime.on_start(starter)
        runtime.on_start(starter)  # once per starter
        try:
            rt.start()
        finally:
            runtime._starters.remove(starter)
        # The presence reporter, the pipeline's watchdog, and the embedded listener apps.ready
        # wires in (the in-memory layer asks for it); cancelled before they ever run.
        assert started == [layer] and len(rt.tasks) == 3
        assert "Reporter.run" in repr(rt.tasks[0])
        assert "Pipeline.run" in repr(rt.tasks[1])
        assert "Listener.run" in repr(rt.tasks[2])
        for task in rt.tasks:
            task.cancel()

    asyncio.run(body())
