"""``python -m bench.paths_versus REV``: the like and comment paths of this checkout against those of commit REV,
so that a change is seen not to make either slower. bench/paths.py's harness of this checkout runs both, each run
a process of its own on a fresh database migrated by its own code, alternating ``--runs`` times; the medians and
every run go to ``bench/results/paths_before_after.json``. Run it on a quiet machine; it takes minutes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, RESULTS_DIR, load_average
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


def _one_run(checkout: Path, *, prepared: bool | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("DB_PREPARED_STATEMENTS", None)
    if prepared is not None:
        env["DB_PREPARED_STATEMENTS"] = str(prepared).lower()
    load = load_average()[0]
    with fresh_database(migrated=False) as url:
        done = subprocess.run(
            [sys.executable, "-c", _ONE_RUN, url], cwd=checkout, env=env, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"the run in {checkout} failed:\n{done.stderr[-3000:]}")
    return {"load_average_at_start": load, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.paths_versus", description=__doc__)
    parser.add_argument("rev", help="the commit to compare with (e.g. the one before a change)")
    parser.add_argument("--runs", type=int, default=3)
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
                    runs.append({"code": name, **_one_run(checkout, prepared=prepared)})
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
        "medians": medians,
        "runs": runs,
    }
    (RESULTS_DIR / "paths_before_after.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()
