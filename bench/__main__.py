"""``python -m bench [--smoke] [--only NAME ...]``: runs the benchmarks, writes ``bench/results/<name>.json``
(each with the machine, versions, time and load average) and ``bench/results/summary.md``.

``--smoke`` runs each one tiny, to show the harness works; its results go to ``bench/results/smoke/`` so that they
never overwrite measured ones. Needs Postgres (TEST_DATABASE_URL / DATABASE_URL, else an embedded one), node,
``bench/js/node_modules`` (``npm ci --prefix bench/js``) and, for the storm, ``tests/js/node_modules``.
Benchmarks assert nothing about speed."""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, load_average, machine
from bench.summary import write_summary
from tests.support.database import fresh_database

BENCHMARKS = ["round_trips", "paths", "concurrency", "coldstart", "fanout", "storm"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="each benchmark tiny, to prove the harness works")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args()
    folder: Path = RESULTS_DIR / "smoke" if args.smoke else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    described = machine()
    # One database for the run (each benchmark uses events of its own): making one costs seconds on a busy machine.
    with fresh_database() as database_url:
        for name in args.only or BENCHMARKS:
            _run_one(name, smoke=args.smoke, database_url=database_url, folder=folder, described=described)
    summary = write_summary(folder)
    print(summary)


def _run_one(name: str, *, smoke: bool, database_url: str, folder: Path, described: dict[str, Any]) -> None:
    print(f"bench: {name}{' (smoke)' if smoke else ''} ...", flush=True)
    started = time.monotonic()
    module = importlib.import_module(f"bench.{name}")
    result: dict[str, Any] = {
        "benchmark": name,
        "smoke": smoke,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": load_average(),
        "machine": described,
        "result": module.run(smoke, database_url),
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    (folder / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench: {name} done in {result['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
