"""Socket.IO fan-out: N official ``socket.io-client`` connections (websocket transport) in one event room; a like
over HTTP reaches every one of them. Measured for our server (``hafi-realtime dev``, Socket.IO provider, against
Postgres) and, in the same run with the same load generator, for the official Node ``socket.io`` server
(``bench/js/peer_server.js``) broadcasting the same event. Also: whether every join succeeds, every client receives
every like, and a like sent over HTTP while the joins are under way is answered.

The load generator (``bench/js/loadgen.js``) takes each arrival against the moment the like was sent, on its own
clock. Everything runs on loopback and is bounded: each load generator has a deadline and stops by itself."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.common import JS_DIR, base_env, load_average, running, venv_bin
from tests.support.ports import free_port

SOCKET_PATH = "/api/socket"
ADMIN_EMAIL = "admin@demo.local"  # the account `hafi-realtime dev` makes, with ADMIN_PASSWORD as its password
ADMIN_PASSWORD = "bench admin password"


@dataclass(frozen=True)
class Size:
    clients: int
    likes: int
    deadline_s: float

    @property
    def slug(self) -> str:
        return f"bench-fanout-{self.clients}"


FULL = [Size(clients=1000, likes=20, deadline_s=240), Size(clients=5000, likes=10, deadline_s=420)]
SMOKE = [Size(clients=20, likes=3, deadline_s=30)]


def _allow_many_sockets() -> None:
    """Each client is a socket on both ends; children inherit the raised limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        raise SystemExit("the fan-out benchmark needs node and bench/js/node_modules (npm ci --prefix bench/js)")
    return node


def _load(node: str, config: dict[str, Any]) -> dict[str, Any]:
    deadline_s = config["deadlineMs"] / 1000 + 30
    completed = subprocess.run(
        [node, str(JS_DIR / "loadgen.js"), json.dumps(config)], capture_output=True, text=True, timeout=deadline_s
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise RuntimeError(f"loadgen failed ({completed.returncode}): {completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _config(
    size: Size, *, url: str, token: str | None, likes: list[dict[str, Any]], mid: dict[str, Any]
) -> dict[str, Any]:
    return {
        "url": url,
        "path": SOCKET_PATH,
        "slug": size.slug,
        "token": token,
        "clients": size.clients,
        "connectConcurrency": 200,
        "joinTimeoutMs": 30_000,
        "httpTimeoutMs": 30_000,
        "deliveryTimeoutMs": 10_000,
        "settleMs": 1000,
        "gapMs": 200,
        "deadlineMs": int(size.deadline_s * 1000),
        "likes": likes,
        "midJoinLike": mid,
    }


def _ours(node: str, size: Size, database_url: str) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = base_env(
        DATABASE_URL=database_url,
        REALTIME_PROVIDER="socketio",
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        RATE_LIMIT_PER_MINUTE="1000000",
        # every client of the load generator comes from loopback: one address, which the benchmarks run before this
        # one in `make bench` (same database, same address) may have used past its per-minute ceiling
        ADDRESS_ACTIONS_PER_MINUTE="1000000",
        SOCKETIO_CONNECTIONS_PER_ADDRESS=str(size.clients + 10),
    )
    command = [venv_bin("hafi-realtime"), "dev", "--port", str(port)]
    with running(command, env=env, ready_url=f"{base}/api/health") as server, httpx.Client(base_url=base) as http:
        login = http.post("/api/auth/admin/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
        login.raise_for_status()
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        http.post("/api/admin/events", json={"slug": size.slug, "title": "Bench"}, headers=admin).raise_for_status()
        photos = http.post(
            f"/api/admin/events/{size.slug}/photos",
            json={"photos": [{"url": f"https://cdn.example.com/b/{i}.jpg"} for i in range(size.likes + 1)]},
            headers=admin,
        )
        photos.raise_for_status()
        photo_ids = [photo["id"] for photo in photos.json()["photos"]]
        guest = http.post("/api/auth/guest").json()["token"]
        headers = {"Authorization": f"Bearer {guest}"}

        def like(photo_id: int) -> dict[str, Any]:
            return {"photoId": photo_id, "url": f"{base}/api/photos/{photo_id}/like", "headers": headers}

        config = _config(size, url=base, token=guest, likes=[like(p) for p in photo_ids[1:]], mid=like(photo_ids[0]))
        result = _load(node, config)
        result["server_alive_after"] = server.process.poll() is None
        result["server_error_lines"] = server.error_lines()
        return result


def _peer(node: str, size: Size) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"x-event-slug": size.slug}

    def like(photo_id: int) -> dict[str, Any]:
        return {"photoId": photo_id, "url": f"{base}/api/photos/{photo_id}/like", "headers": headers}

    command = [node, str(JS_DIR / "peer_server.js"), str(port), SOCKET_PATH]
    # The peer answers 404 to GET /, which is enough to know it is listening.
    with running(command, env=base_env(), ready_url=f"{base}/") as server:
        config = _config(size, url=base, token=None, likes=[like(i) for i in range(1, size.likes + 1)], mid=like(0))
        result = _load(node, config)
        result["server_alive_after"] = server.process.poll() is None
        result["server_error_lines"] = server.error_lines()
        return result


def _ratio(ours: Any, peer: Any) -> float | None:
    if not isinstance(ours, int | float) or not isinstance(peer, int | float) or peer <= 0:
        return None
    return round(ours / peer, 2)


def run(smoke: bool, database_url: str) -> dict[str, Any]:
    _allow_many_sockets()
    node = _node()
    sizes = SMOKE if smoke else FULL
    runs = []
    for size in sizes:
        entry: dict[str, Any] = {"clients": size.clients, "likes": size.likes, "load_average_at_start": load_average()}
        entry["ours"] = _ours(node, size, database_url)
        time.sleep(1)
        entry["load_average_before_peer"] = load_average()
        entry["peer"] = _peer(node, size)
        entry["ratio_p50"] = _ratio(entry["ours"]["fanout"]["p50_ms"], entry["peer"]["fanout"]["p50_ms"])
        entry["ratio_p99"] = _ratio(entry["ours"]["fanout"]["p99_ms"], entry["peer"]["fanout"]["p99_ms"])
        runs.append(entry)
    return {
        "what": "like over HTTP -> photo:liked at every socket.io-client in one room (websocket transport)",
        "ours_server": "hafi-realtime dev (socketio provider, Postgres)",
        "peer_server": "bench/js/peer_server.js (official Node socket.io, no database)",
        "runs": runs,
    }


def main() -> None:
    """``python -m bench.fanout --clients N [--likes L] [--side ours|peer|both]``: one size, printed, not saved
    (for trying a change; ``make bench`` is what writes results)."""
    import argparse

    from tests.support.database import fresh_database

    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=main.__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--likes", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=240)
    parser.add_argument("--side", choices=["ours", "peer", "both"], default="both")
    args = parser.parse_args()
    _allow_many_sockets()
    node = _node()
    size = Size(clients=args.clients, likes=args.likes, deadline_s=args.deadline)
    shown = ("joined", "joinFailures", "join", "midJoinLike", "deliveriesMissing", "fanout", "wallMs", "timedOut")
    with fresh_database() as database_url:
        for side in ("ours", "peer") if args.side == "both" else (args.side,):
            result = _ours(node, size, database_url) if side == "ours" else _peer(node, size)
            brief = {key: result.get(key) for key in shown}
            print(side, f"load {load_average()}", json.dumps(brief), result.get("server_error_lines"), flush=True)


if __name__ == "__main__":
    main()
