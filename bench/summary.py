"""The table of issue 10's figures, from the JSON files in a results folder: figure, ours, peer, ratio, goal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TIMES = "\N{MULTIPLICATION SIGN}"


def _load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:g} ms"


def _ratio(value: Any) -> str:
    return "n/a" if value is None else f"{value:g}{TIMES}"


def _failures(side: dict[str, Any]) -> str:
    """Clients that never joined (refused, timed out, or not reached before the deadline), deliveries missing of the
    likes sent, and likes never sent; derived from the raw counts."""
    not_joined = side["clients"] - side["joined"]
    missing = side["joined"] * side["likesSent"] - side["deliveriesReceived"]
    unsent = len(side["perLike"]) - side["likesSent"]
    total = not_joined + missing + unsent
    mid = side.get("midJoinLike") or {}
    deadline = ", deadline hit" if side.get("timedOut") else ""
    return (
        f"{total} ({not_joined} not joined, {missing} not delivered, {unsent} likes unsent{deadline}); "
        f"like during joins: HTTP {mid.get('status')} in {_ms(mid.get('ms'))}"
    )


def _fanout_rows(fanout: dict[str, Any]) -> list[list[str]]:
    rows = []
    for entry in fanout["result"]["runs"]:
        ours, peer = entry["ours"], entry["peer"]
        rows.append(
            [
                f"fan-out p50 / p99, {entry['clients']:,} clients",
                f"{_ms(ours['fanout']['p50_ms'])} / {_ms(ours['fanout']['p99_ms'])}",
                f"{_ms(peer['fanout']['p50_ms'])} / {_ms(peer['fanout']['p99_ms'])}",
                f"{_ratio(entry['ratio_p50'])} / {_ratio(entry['ratio_p99'])}",
                f"≤ 2.0{TIMES} at p99" if entry["clients"] < 5000 else f"≤ 2.5{TIMES} at p99",
            ]
        )
        rows.append([f"failures, {entry['clients']:,} clients", _failures(ours), _failures(peer), "", "0 failures"])
    return rows


def _storm_rows(storm: dict[str, Any]) -> list[list[str]]:
    rows = []
    for run in storm["result"]["runs"]:
        seconds = run["likeWindowMs"] / 1000
        # Runs from before the setting existed had no prepared statements.
        prepared = "prepared statements" if run.get("preparedStatements") else "no prepared statements"
        on = (
            f"storm on {run['provider']}, {prepared} ({run['likes']:,} likes in {seconds:g} s, "
            f"{run['watchers']} watchers)"
        )
        latency = run["latencyMs"]
        if run["providerMessagesPerLike"] is not None:  # a stand-in counted them (not our own Socket.IO node)
            rows += [
                [
                    f"{on}: provider messages per like, published / delivered",
                    f"{run['providerMessagesPerLike']:g} / {run['deliveredPerLike']:g}",
                    "",
                    "",
                    "published < 1",
                ],
                [
                    f"{on}: messages published per second on the channel, max / mean",
                    f"{run['maxPublishesPerSecond']}/s / {run['meanPublishesPerSecond']:g}/s",
                    "",
                    "",
                    "≤ 20/s (the ceiling)",
                ],
                [
                    f"{on}: refused by the provider (over Ably's 50/s per channel)",
                    f"{run['refused']} ({run['overAblyChannelRate']})",
                    "",
                    "",
                    "0",
                ],
            ]
        rows += [
            [
                f"{on}: like → every watcher p50 / p99; likes answered 200; watchers exact",
                f"{_ms(latency['p50'])} / {_ms(latency['p99'])}; {run['likesAnswered200']}; {run['watchersExact']}",
                "",
                "",
                f"p99 < 500 ms; {run['likes']}; {run['watchers']}",
            ],
        ]
        answered = run.get("likeAnswerMs")
        if answered:  # where a storm's latency goes: waiting for the answer, or after it
            rows.append(
                [
                    f"{on}: like answered by the API, p50 / p99",
                    f"{_ms(answered['p50'])} / {_ms(answered['p99'])}",
                    "",
                    "",
                    "",
                ]
            )
    return rows


def table(folder: Path) -> str:
    rows: list[list[str]] = []
    fanout = _load(folder, "fanout")
    if fanout:
        rows += _fanout_rows(fanout)
    cold = _load(folder, "coldstart")
    if cold:
        result = cold["result"]
        for figure, label in (
            ("like", "cold start → first like answered (median)"),
            ("like_function", "cold start, like function → first like answered (median)"),
            ("health", "cold start → `/api/health` vs bare hello (median)"),
        ):
            if f"ours_{figure}" not in result:  # the like function was measured from issue 10's fix on
                continue
            peer = "like" if figure == "like_function" else figure
            rows.append(
                [
                    label,
                    _ms(result[f"ours_{figure}"]["median_total_ms"]),
                    _ms(result[f"bare_{peer}"]["median_total_ms"]),
                    _ratio(result[f"ratio_{figure}"]),
                    f"≤ 1.5{TIMES}",
                ]
            )
        if "bare_sqlalchemy_like" in result:  # measured from issue 10's second round on
            floor = result["bare_sqlalchemy_like"]["median_total_ms"]
            rows.append(
                [
                    "cold start, the bare INSERT through SQLAlchemy's async engine, built as ours (the floor)",
                    _ms(floor),
                    _ms(result["bare_like"]["median_total_ms"]),
                    _ratio(result["ratio_bare_sqlalchemy_like"]),
                    "",
                ]
            )
            rows.append(
                [
                    "cold start, like function vs that floor",
                    _ms(result["ours_like_function"]["median_total_ms"]),
                    _ms(floor),
                    _ratio(result["ratio_like_function_vs_bare_sqlalchemy"]),
                    "",
                ]
            )
    trips = _load(folder, "round_trips")
    if trips:
        result = trips["result"]
        rows.append(
            [
                "database round trips per like (but the post-publish mark)",
                f"{result['round_trips_but_post_publish_mark']} (+1 mark)",
                f"{result['floor']}",
                "",
                "≤ 3",
            ]
        )
    burst = _load(folder, "concurrency")
    if burst:
        result = burst["result"]
        rows.append(
            [
                f"{result['likes']} concurrent likes on one photo, each from its own address, served by uvicorn"
                " (likes/s, best round)",
                f"{result['ours_per_second']:g}/s",
                f"{result['bare_per_second']:g}/s",
                _ratio(result["ratio"]),
                f"≥ 0.8{TIMES}",
            ]
        )
        if "median_ratio" in result:
            rows.append(
                [
                    f"the same {result['likes']} likes, each from its own address (likes/s, median round)",
                    f"{result['ours_median_per_second']:g}/s",
                    f"{result['bare_median_per_second']:g}/s",
                    _ratio(result["median_ratio"]),
                    "",
                ]
            )
        if "one_address_ratio" in result:
            rows.append(
                [
                    f"the same {result['likes']} likes all from one address, its limit lifted (best / median round)",
                    f"{result['ours_one_address_per_second']:g}/s / {result['ours_one_address_median_per_second']:g}/s",
                    f"{result['bare_per_second']:g}/s / {result['bare_median_per_second']:g}/s",
                    f"{_ratio(result['one_address_ratio'])} / {_ratio(result['one_address_median_ratio'])}",
                    "",
                ]
            )
        if "function_ratio" in result:  # measured since requests publish after answering where they can
            rows.append(
                [
                    f"{result['likes']} concurrent likes on one photo, as a function: publishing before answering",
                    f"{result['ours_function_per_second']:g}/s",
                    f"{result['bare_per_second']:g}/s",
                    _ratio(result["function_ratio"]),
                    "",
                ]
            )
    paths = _load(folder, "paths")
    if paths:
        result = paths["result"]
        for figure in ("like", "comment"):
            rows.append(
                [f"{figure} path p50 (one at a time)", _ms(result[figure]["p50_ms"]), "", "", "no slower than before"]
            )
    storm = _load(folder, "storm")
    if storm:
        rows += _storm_rows(storm)
    # Benchmarks may have been run at different times, even on different machines (``--only``): each says its own.
    measured = [
        f"{name} at {data['when']} on {data['machine']['cpus']} CPUs ({data['machine']['cpu_model']}), "
        f"load {data['load_average_before'][0]:g}"
        for name in ("fanout", "coldstart", "round_trips", "concurrency", "paths", "storm")
        if (data := _load(folder, name))
    ]
    lines = ["| figure | ours | peer | ratio | goal |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    first = next((data for name in ("fanout", "coldstart", "storm") if (data := _load(folder, name))), None)
    context = ""
    if first:
        described = first["machine"]
        context = (
            f"\n\nPython {described['python']}, Node {described['node']}. Each benchmark, when it was measured, on"
            f" what, and the 1-minute load average at its start: {'; '.join(measured)}."
        )
    return "\n".join(lines) + context + "\n"


def write_summary(folder: Path) -> str:
    text = "# Benchmark summary (written by `make bench`)\n\n" + table(folder)
    (folder / "summary.md").write_text(text)
    return text
