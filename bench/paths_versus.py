"""``python -m bench.paths_versus REV``: the like and comment paths of this checkout against those of commit REV,
so that a change is seen not to make either slower. bench/paths.py's harness of this checkout runs both, each run
a process of its own on a fresh database migrated by its own code, alternating ``--runs`` times; the medians and
every run go to ``bench/results/paths_before_after.json`` (``--output``). Run it on a quiet machine; it takes
minutes.

Postgres here is on loopback, where a round trip costs almost nothing; ``--added-latency-ms`` puts a delaying proxy
(``bench/latency_proxy.py``) between both and the database, for what a round trip saved is worth where the
database is across a network, as it is from a function. The round trip measured through it is recorded."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.common import BENCH_DIR, RESULTS_DIR, load_average
from bench.latency_proxy import delaying_proxy
from tests.support.database import fresh_database

CHECKOUT = BENCH_DIR.parent
# Run in the checkout measured: its migrations, then the harness.
_ONE_RUN = """
import json, sys
from core.migrations import upgrade
from bench.paths import run
upgrade(sys.argv[1])
result = run(False, sys.argv[1])
print(json.dumps({"like_p50_ms": result["like"]["p50_ms"], "comment_p50_ms": result["comment"]["p50_ms"]}))
"""


def _round_trip_ms(url: str) -> float:
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False), autocommit=True) as conn:
        times = []
        for _ in range(50):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


@contextmanager
def _reached_through(url: str, one_way_ms: float) -> Iterator[str]:
    """``url``, or with ``one_way_ms`` the same database behind ``delaying_proxy``."""
    if not one_way_ms:
        yield url
        return
    direct = make_url(url)
    with delaying_proxy(direct.host or "127.0.0.1", direct.port or 5432, one_way_ms=one_way_ms) as port:
        yield direct.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def _one_run(checkout: Path, *, prepared: bool | None, one_way_ms: float) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("DB_PREPARED_STATEMENTS", None)
    if prepared is not None:
        env["DB_PREPARED_STATEMENTS"] = str(prepared).lower()
    load = load_average()[0]
    with fresh_database(migrated=False) as direct_url, _reached_through(direct_url, one_way_ms) as url:
        rtt = _round_trip_ms(url)
        done = subprocess.run(
            [sys.executable, "-c", _ONE_RUN, url], cwd=checkout, env=env, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"the run in {checkout} failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"load_average_at_start": load, "database_round_trip_ms": rtt, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paths_versus", description=__doc__)
    parser.add_argument("rev", help="the commit to compare with (e.g. the one before a change)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--output", default="paths_before_after.json", help="its name in bench/results/")
    parser.add_argument(
        "--added-latency-ms",
        type=float,
        default=0.0,
        help="hold each chunk to and from the database this long, each way (bench/latency_proxy.py)",
    )
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.rev], cwd=CHECKOUT, capture_output=True, text=True, check=True
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as folder:
        before = Path(folder) / rev
        subprocess.run(["git", "worktree", "add", "--detach", str(before), rev], cwd=CHECKOUT, check=True)
        try:
            shutil.copy(BENCH_DIR / "paths.py", before / "bench" / "paths.py")
            versions = {
                f"{rev} (before)": (before, None),
                f"{head}, DB_PREPARED_STATEMENTS=false (default)": (CHECKOUT, False),
                f"{head}, DB_PREPARED_STATEMENTS=true": (CHECKOUT, True),
            }
            runs = []
            for _ in range(args.runs):
                for name, (checkout, prepared) in versions.items():
                    measured = _one_run(checkout, prepared=prepared, one_way_ms=args.added_latency_ms)
                    runs.append({"code": name, **measured})
                    print(json.dumps(runs[-1]), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=CHECKOUT, check=False)
    medians = {
        name: {
            figure: statistics.median(run[figure] for run in runs if run["code"] == name)
            for figure in ("like_p50_ms", "comment_p50_ms")
        }
        for name in versions
    }
    result = {
        "what": f"bench/paths.py's harness against {rev} and {head}, alternating {args.runs} times, fresh databases",
        "added_latency_ms_each_way": args.added_latency_ms,
        "medians": medians,
        "runs": runs,
    }
    (RESULTS_DIR / args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()
