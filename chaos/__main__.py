"""``python -m chaos`` (or ``scripts/chaos``): run the stack under faults and check every stream.

Exit status: 0 when every client received every committed change exactly once and in order;
1 when anything was lost, duplicated, out of order or corrupt (or a client got ``reset``);
2 when the run itself could not be carried out (a server did not start, a fault's recovery
never came); 130 when interrupted. Every process and directory it started is gone when it
returns, whichever way; the logs and ``report.json`` stay in the output directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from tests.support import ROOT

from . import plan, report
from .run import drive
from .topology import Topology


def parse(argv: list[str]) -> plan.Config:
    d = plan.Config()
    p = argparse.ArgumentParser(
        prog="scripts/chaos", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--duration", type=float, default=d.duration, help="seconds of writing (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the fault schedule, writer and drops")
    p.add_argument("--layer", choices=plan.LAYERS, default=d.layer, help="channel layer (default %(default)s)")
    p.add_argument("--fault-every", type=float, default=d.fault_every, help="mean seconds between server faults")
    p.add_argument(
        "--kinds",
        default=",".join(d.kinds),
        help="comma-separated fault kinds (default: all): " + ", ".join(plan.FAULT_KINDS),
    )
    p.add_argument("--clients", type=int, default=d.clients, help="clients of each kind (ws-single, ws-multi, sse)")
    p.add_argument(
        "--drop-every", type=float, default=d.drop_every, help="mean seconds a client stays connected (0: no drops)"
    )
    p.add_argument("--rate", type=float, default=d.rate, help="writer transactions per second")
    p.add_argument("--writers", type=int, default=d.writers, help="connections writing short transactions")
    p.add_argument("--settle", type=float, default=d.settle, help="most seconds to wait for clients at the end")
    p.add_argument("--out", help="directory for logs and report.json (default .pgevents/chaos/<time>-seed<seed>)")
    a = p.parse_args(argv)
    try:
        return plan.Config(
            duration=a.duration,
            seed=a.seed,
            layer=a.layer,
            fault_every=a.fault_every,
            kinds=tuple(k for k in a.kinds.split(",") if k),
            clients=a.clients,
            drop_every=a.drop_every,
            rate=a.rate,
            writers=a.writers,
            settle=a.settle,
            out=a.out,
        )
    except ValueError as exc:
        p.error(str(exc))


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main(argv: list[str]) -> int:
    cfg = parse(argv)
    out = Path(cfg.out or ROOT / ".pgevents" / "chaos" / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{cfg.seed}")
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)

    def say(msg: str) -> None:
        print(f"[chaos] {msg}", file=sys.stderr, flush=True)

    say(f"logs in {out}; schedule: " + ", ".join(f"{f.at:.0f}s {f.kind}" for f in plan.faults(cfg)))
    topo = Topology(cfg.layer, out)
    load_before = os.getloadavg()
    try:
        topo.start()
        say(
            f"stack up: PostgreSQL :{topo.pg.port if topo.pg else '?'}, Redis :{topo.redis.port if topo.redis else '?'}, "
            f"daphne :{topo.ports[0]} :{topo.ports[1]}, 2 listeners"
        )
        outcome = asyncio.run(drive(cfg, topo, say))
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        return 130
    except Exception as exc:
        say(f"the run could not be completed: {type(exc).__name__}: {exc}")
        say(f"logs: {out}")
        return 2
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the clean-up finish
        topo.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    outcome.load = {"before": load_before, "after": os.getloadavg()}
    result = report.build(outcome)
    (out / "report.json").write_text(json.dumps(result, indent=2, default=str))
    print(report.render(result))
    say(f"report and logs: {out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
