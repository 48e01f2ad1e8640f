"""The deploy check (`make deploy-check`): the deploy artifacts run as deployed, from a fresh clone, with no network
beyond the package registries.

1. Tools, pinned here and installed into .deploy-check/: cfn-lint and uv; awslambdaric alone in a clean venv on
   Python 3.12 (the function's runtime, nothing of the project in it); the Lambda Runtime Interface Emulator (RIE)
   from the aws-sam-cli wheel (downloaded, never installed); osls and vercel by `npm ci` at the root.
2. The Lambda zip, built by infra/aws/build_lambda.sh for x86_64 (and once more with LAMBDA_COMPILE=0, the build
   before the bytecode fix, only to time its INIT), and a bare FastAPI + Mangum zip (bench/bare_lambda.py).
3. serverless.yml printed and packaged offline by the pinned framework, no AWS credentials; the template linted.
4. Each function unzipped into a read-only directory and run under RIE + awslambdaric with an empty environment but
   the settings a deploy sets (a fresh migrated database, the Ably stand-in as the provider): the HTTP function
   through guest token -> event page -> like -> comment with API Gateway v2 and v1 events, the stand-in receiving
   the publishes, one database connection across warm invocations; the relay with a scheduled event.
5. INIT durations (RIE's INIT REPORT) of our functions, with and without the bytecode fix, next to the bare zip's.
6. `vercel build` on a copy of the repository, and the function it produced served the same way in production.

Results go to build/deploy-check.json and a table; any failed step stops the check with its reason.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn

from core.demo import DEMO_SLUG
from standins.ably_service import FakeAbly
from tests.support.lambda_events import http_event, load
from tests.support.ports import free_port
from tests.support.web_client import CLIENT_PATH, sdk_paths

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".deploy-check"
RESULTS = ROOT / "build" / "deploy-check.json"
TARGET_PYTHON = (3, 12)
# The tools, pinned: cfn-lint for the template, uv for `vercel build`, awslambdaric as the runtime client, and the
# aws-sam-cli wheel only for the RIE binary inside it.
TOOL_PINS = ("cfn-lint==1.58.0", "uv==0.13.9")
RUNTIME_PINS = ("awslambdaric==4.2.2",)
SAM_CLI = "aws-sam-cli==1.170.0"
RIE_MEMBER = "samcli/local/rapid/aws-lambda-rie-x86_64"
# The bare peer's own dependencies, at the versions the tests ran.
BARE_REQUIREMENTS = ("fastapi", "mangum", "psycopg[binary]")
INIT_RUNS = 3
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: ([0-9.]+)\)")


class CheckFailed(Exception):
    """A step failed; the message says what and why."""


@dataclass
class Report:
    steps: dict[str, float] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    init_ms: dict[str, list[float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"deploy-check: {name} ...", flush=True)
        started = time.monotonic()
        try:
            yield
        except CheckFailed as exc:
            raise CheckFailed(f"{name}: {exc}") from None
        elapsed = time.monotonic() - started
        self.steps[name] = round(elapsed, 1)
        print(f"deploy-check: {name}: ok ({elapsed:.1f} s)", flush=True)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(command: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Runs a command to its end; its output, or CheckFailed with the output's tail."""
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"`{' '.join(command)}` did not finish within {timeout:.0f} s") from None
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise CheckFailed(f"`{' '.join(command)}` exited {result.returncode}:\n{_tail(output)}")
    return output


@dataclass
class Job:
    """A preparation that runs beside the others (installs and downloads are mostly waiting on the registry)."""

    name: str
    work: Callable[[], None]
    error: BaseException | None = None
    seconds: float = 0.0
    thread: threading.Thread | None = None

    def start(self) -> Job:
        def body() -> None:
            started = time.monotonic()
            try:
                self.work()
            except BaseException as exc:
                self.error = exc
            self.seconds = time.monotonic() - started

        self.thread = threading.Thread(target=body, name=self.name, daemon=True)
        self.thread.start()
        return self

    def wait(self, report: Report) -> None:
        assert self.thread is not None
        self.thread.join()
        if self.error is not None:
            raise CheckFailed(f"{self.name}: {self.error}")
        report.steps[self.name] = round(self.seconds, 1)
        print(f"deploy-check: {self.name}: ok ({self.seconds:.1f} s, beside the builds)", flush=True)


# Tools


def target_python() -> str:
    """The Python 3.12 the project venv was made from (the Makefile chose it)."""
    if sys.version_info[:2] != TARGET_PYTHON:
        raise CheckFailed(f"run with the project's venv on Python {TARGET_PYTHON[0]}.{TARGET_PYTHON[1]} (make install)")
    for name in ("python3.12", "python3", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    raise CheckFailed(f"no interpreter under {sys.base_prefix}/bin")


def _venv(path: Path, pins: tuple[str, ...]) -> Path:
    """A venv with exactly ``pins`` installed; kept between runs while the pins are the same."""
    stamp = path / ".pins"
    if stamp.exists() and stamp.read_text() == "\n".join(pins):
        return path
    shutil.rmtree(path, ignore_errors=True)
    run([target_python(), "-m", "venv", str(path)])
    run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", "--root-user-action=ignore", *pins])
    stamp.write_text("\n".join(pins))
    return path


def install_tools() -> None:
    _venv(TOOLS / "tools", TOOL_PINS)


def install_runtime() -> None:
    _venv(TOOLS / "runtime", RUNTIME_PINS)


def rie_binary() -> Path:
    return TOOLS / "aws-lambda-rie-x86_64"


def download_rie() -> None:
    if rie_binary().exists():
        return
    downloads = TOOLS / "downloads"
    run([target_python(), "-m", "pip", "download", "--quiet", "--no-deps", SAM_CLI, "-d", str(downloads)])
    wheel = next(downloads.glob("aws_sam_cli-*.whl"))
    with zipfile.ZipFile(wheel) as archive, archive.open(RIE_MEMBER) as source:
        rie_binary().write_bytes(source.read())
    rie_binary().chmod(0o755)
    shutil.rmtree(downloads)


def npm_ci() -> None:
    """`npm ci` at the root, skipped while node_modules is what the same lock file installed."""
    stamp = TOOLS / "npm-ci.lock"
    lock = (ROOT / "package-lock.json").read_bytes()
    if stamp.exists() and stamp.read_bytes() == lock and (ROOT / "node_modules" / ".bin" / "osls").exists():
        return
    run(["npm", "ci", "--no-audit", "--no-fund", "--silent"])
    stamp.write_bytes(lock)


# Builds


def build_zip(out: Path, *, compile_ahead: bool) -> Path:
    env = os.environ | {
        "LAMBDA_ARCH": "x86_64",
        "LAMBDA_OUT": str(out),
        "LAMBDA_COMPILE": "1" if compile_ahead else "0",
    }
    run(["bash", "infra/aws/build_lambda.sh"], env=env)
    return out / "lambda.zip"


def build_bare_zip() -> None:
    """bench/bare_lambda.py and its dependencies, built as ours is: same versions, bytecode compiled ahead."""
    out = TOOLS / "bare"
    shutil.rmtree(out, ignore_errors=True)
    package = out / "package"
    package.mkdir(parents=True)
    constraints = out / "constraints.txt"
    constraints.write_text(run([sys.executable, "-m", "pip", "freeze", "--exclude-editable", "--all"]))
    python = target_python()
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--root-user-action=ignore",
            "--no-compile",
            "--target",
            str(package),
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "--implementation",
            "cp",
            "--python-version",
            "3.12",
            "--only-binary=:all:",
            "--constraint",
            str(constraints),
            *BARE_REQUIREMENTS,
        ]
    )
    shutil.copy(ROOT / "bench" / "bare_lambda.py", package / "bare_lambda.py")
    run([python, "-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode", "unchecked-hash", str(package)])
    _zip_directory(package, out / "lambda.zip")


def _zip_directory(source: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source).as_posix())


def unpack_read_only(artifact: Path, target: Path) -> Path:
    """A fresh directory holding the artifact, which the function cannot write to (Lambda's /var/task is not)."""
    if target.exists():
        _make_writable(target)
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with zipfile.ZipFile(artifact) as archive:
        archive.extractall(target)
    _make_read_only(target)
    return target


def _make_read_only(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def _make_writable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


# serverless.yml


def tool_env(**extra: str) -> dict[str, str]:
    """No AWS credentials, no home with a config in it: the framework must work offline and unauthenticated."""
    home = TOOLS / "home"
    home.mkdir(parents=True, exist_ok=True)
    kept = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "SLS_", "VERCEL"))}
    return kept | {"HOME": str(home), "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off"} | extra


def check_serverless(report: Report) -> None:
    npx = ["npx", "--no-install", "osls"]
    version = run([*npx, "--version"], env=tool_env()).strip().splitlines()[0]
    report.facts["framework"] = version
    run([*npx, "print", "--stage", "dev"], env=tool_env())
    shutil.rmtree(ROOT / ".serverless", ignore_errors=True)
    run([*npx, "package", "--stage", "dev"], env=tool_env())
    template_path = ROOT / ".serverless" / "cloudformation-template-update-stack.json"
    run(
        [
            str(TOOLS / "tools" / "bin" / "cfn-lint"),
            "--regions",
            "eu-west-1",
            "--ignore-checks",
            "W3005",
            "--",
            str(template_path),
        ]
    )
    resources = json.loads(template_path.read_text())["Resources"]
    functions = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    handlers = {props["Handler"] for props in functions.values()}
    if handlers != {"functions/api.handler", "functions/likes.handler", "functions/outbox_relay.handler"}:
        raise CheckFailed(f"the template's functions are {sorted(handlers)}")
    for props in functions.values():
        if props["Runtime"] != "python3.12" or props.get("Architectures") != ["arm64"]:
            raise CheckFailed(f"{props['Handler']} runs {props['Runtime']} on {props.get('Architectures')}")
        if "ReservedConcurrentExecutions" in props:
            raise CheckFailed(f"{props['Handler']} reserves concurrency (new accounts cannot)")
    snapstart = {p["Handler"] for p in functions.values() if p.get("SnapStart", {}).get("ApplyOn")}
    if snapstart != {"functions/api.handler", "functions/likes.handler"}:
        raise CheckFailed(f"SnapStart is on for {sorted(snapstart)}, expected the HTTP functions")


# The database and the provider stand-in


def admin_url() -> str:
    return (
        os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1/postgres"
    )


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = f"deploy_check_{secrets.token_hex(4)}"
    base = admin_url().replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", base.split("//", 1)[1], count=1)
    try:
        yield f"postgresql://{url}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate_and_seed(database_url: str) -> None:
    """As an operator does before a deploy: the CLI, against the direct URL."""
    cli = str(Path(sys.executable).parent / "hafi-realtime")
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url}
    run([cli, "migrate"], env=env)
    run([cli, "seed-demo"], env=env)


@contextlib.contextmanager
def ably_standin() -> Iterator[tuple[FakeAbly, int]]:
    """The Ably stand-in (standins/) on loopback, in a thread of this process so the check can look inside it."""
    service = FakeAbly()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(service.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise CheckFailed("the Ably stand-in did not start")
        time.sleep(0.05)
    try:
        yield service, port
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def deploy_settings(database_url: str, ably: FakeAbly, ably_port: int, jwt_secret: str) -> dict[str, str]:
    """What a deploy sets (serverless.yml's environment, a Vercel project's settings), pointed at loopback."""
    return {
        "APP_ENV": "production",
        "DATABASE_URL": database_url,
        "JWT_SECRET": jwt_secret,
        "REALTIME_PROVIDER": "ably",
        "ABLY_API_KEY": ably.key,
        "ABLY_ENDPOINT": "127.0.0.1",
        "ABLY_TLS": "false",
        "ABLY_PORT": str(ably_port),
        "ABLY_USE_BINARY_PROTOCOL": "false",
        "LOG_LEVEL": "INFO",
    }


# The Lambda runtime


@dataclass
class Emulated:
    """One function under RIE: invoke it, read its INIT duration, stop it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    client: httpx.Client

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.post(f"http://127.0.0.1:{self.port}{INVOKE_PATH}", json=event, timeout=60)
        except httpx.HTTPError as exc:
            raise CheckFailed(f"{self.name}: invoking failed ({exc!r})\n{_tail(self.output())}") from None
        if response.status_code != 200:
            raise CheckFailed(
                f"{self.name}: RIE answered {response.status_code} {response.text}\n{_tail(self.output())}"
            )
        answer: dict[str, Any] = response.json()
        if "errorType" in answer:
            raise CheckFailed(f"{self.name}: the function failed: {answer}\n{_tail(self.output())}")
        return answer

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def init_ms(self) -> float:
        found = INIT_REPORT.search(self.output())
        if found is None:
            raise CheckFailed(f"{self.name}: no INIT REPORT in RIE's log\n{_tail(self.output())}")
        return float(found.group(1))


@contextlib.contextmanager
def emulated(
    name: str, task: Path, handler: str, settings: dict[str, str], extra_env: dict[str, str] | None = None
) -> Iterator[Emulated]:
    """``handler`` from ``task`` under RIE with the clean runtime venv, the environment empty but for ``settings``
    (and what Lambda itself sets). Each function gets its own ports (RIE's runtime API included)."""
    port, api_port = free_port(), free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task),
        "PYTHONNOUSERSITE": "1",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "eu-west-1",
    }
    env |= settings | (extra_env or {})
    logs = TOOLS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    python = TOOLS / "runtime" / "bin" / "python"
    command = [
        str(rie_binary()),
        "--log-level",
        "info",
        "--runtime-interface-emulator-address",
        f"127.0.0.1:{port}",
        "--runtime-api-address",
        f"127.0.0.1:{api_port}",
        str(python),
        "-m",
        "awslambdaric",
        handler,
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            cwd=task,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    with httpx.Client(trust_env=False) as client:  # loopback only, never through a proxy
        function = Emulated(name, process, port, log, client)
        try:
            _wait_for_port(port, function)
            yield function
        finally:
            _stop(process)


def _wait_for_port(port: int, function: Emulated) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if function.process.poll() is not None:
            raise CheckFailed(f"{function.name}: RIE exited\n{_tail(function.output())}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise CheckFailed(f"{function.name}: RIE did not listen on {port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# What the functions must do


def expect(answer: dict[str, Any], status: int, what: str) -> Any:
    if answer.get("statusCode") != status:
        raise CheckFailed(f"{what}: expected {status}, got {answer.get('statusCode')}: {answer.get('body')}")
    body = answer.get("body") or "null"
    return json.loads(body)


# Fewer bytes than any script a page loads (realtime.js, 16 KB, is the smallest): an error page, not the file.
SCRIPT_MIN_BYTES = 5_000


def expect_script(answer: dict[str, Any], what: str) -> None:
    """A JavaScript file answered whole: what a page's ``<script>`` gets."""
    status = answer.get("statusCode")
    headers = {name.lower(): value for name, value in (answer.get("headers") or {}).items()}
    body = answer.get("body") or ""
    size = len(base64.b64decode(body)) if answer.get("isBase64Encoded") else len(body.encode())
    if status != 200 or "javascript" not in headers.get("content-type", "") or size < SCRIPT_MIN_BYTES:
        raise CheckFailed(f"{what}: {status}, {headers.get('content-type')}, {size} bytes")


def browser_client_flow(invoke: Callable[[str], dict[str, Any]], where: str) -> None:
    """realtime.js and each SDK build it loads, from the deployed API: what a page on any origin includes."""
    expect_script(invoke(CLIENT_PATH), f"GET {CLIENT_PATH} ({where})")
    for path in sdk_paths():
        expect_script(invoke(path), f"GET {path} ({where})")


def backend_pids(database_url: str) -> set[int]:
    """The database's server processes, other than the one asking: the function's own connections."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return {int(row[0]) for row in rows}


def published(ably: FakeAbly, name: str) -> list[str]:
    """The ids of the events named ``name`` the stand-in received, alone or inside a group (docs/realtime.md)."""
    events = []
    for message in ably.delivered:
        if message.name == "group":
            events += [(event["name"], event["data"]["id"]) for event in message.data["events"]]
        else:
            events.append((message.name, message.id))
    return [event_id for event_name, event_id in events if event_name == name]


def http_flow(function: Emulated, version: str, ably: FakeAbly, database_url: str, pids: list[set[int]]) -> None:
    """Guest token -> event page -> like -> comment, as a browser does, through API Gateway ``version`` events."""

    def call(method: str, path: str, status: int, token: str | None = None, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = function.invoke(http_event(version, method, path, headers=headers, body=body))
        pids.append(backend_pids(database_url))
        return expect(answer, status, f"{method} {path} (API Gateway {version})")

    browser_client_flow(lambda path: function.invoke(http_event(version, "GET", path)), f"API Gateway {version}")
    health = call("GET", "/api/health", 200)
    if health != {"status": "ok", "provider": "ably"}:
        raise CheckFailed(f"/api/health answered {health}")
    token = call("POST", "/api/auth/guest", 200)["token"]
    page = call("GET", f"/api/events/{DEMO_SLUG}", 200, token)
    photo = page["photos"][0]
    likes_before = len(published(ably, "photo:liked"))
    liked = call("POST", f"/api/photos/{photo['id']}/like", 200, token)
    if not (liked["liked"] and liked["changed"] and liked["likeCount"] == photo["likeCount"] + 1):
        raise CheckFailed(f"the like answered {liked}")
    comment = call(
        "POST", f"/api/photos/{photo['id']}/comments", 201, token, {"authorName": "Deploy", "content": f"via {version}"}
    )
    if comment["content"] != f"via {version}":
        raise CheckFailed(f"the comment answered {comment}")
    if len(published(ably, "photo:liked")) != likes_before + 1:
        raise CheckFailed(f"the stand-in did not receive the like: {ably.delivered}")
    if not any(comment["content"] in json.dumps(m.data) for m in ably.delivered if m.name == "comment:added"):
        raise CheckFailed(f"the stand-in did not receive the comment: {ably.delivered}")


def like_flow(api: Emulated, likes: Emulated, ably: FakeAbly) -> None:
    """The like function, with a guest token and a photo from the API function: a like and an unlike over both
    event versions, each published; a route it does not serve is 404."""
    token = expect(api.invoke(http_event("2.0", "POST", "/api/auth/guest")), 200, "guest token")["token"]
    headers = {"Authorization": f"Bearer {token}"}
    page = expect(api.invoke(http_event("2.0", "GET", f"/api/events/{DEMO_SLUG}", headers=headers)), 200, "event")
    photo_id = page["photos"][-1]["id"]
    for version in ("2.0", "1.0"):
        before = len(published(ably, "photo:liked")) + len(published(ably, "photo:unliked"))
        liked = expect(
            likes.invoke(http_event(version, "POST", f"/api/photos/{photo_id}/like", headers=headers)),
            200,
            f"POST like on the like function (API Gateway {version})",
        )
        unliked = expect(
            likes.invoke(http_event(version, "DELETE", f"/api/photos/{photo_id}/like", headers=headers)),
            200,
            f"DELETE like on the like function (API Gateway {version})",
        )
        if not (liked["liked"] and liked["changed"] and not unliked["liked"] and unliked["changed"]):
            raise CheckFailed(f"the like function answered {liked} then {unliked}")
        if len(published(ably, "photo:liked")) + len(published(ably, "photo:unliked")) != before + 2:
            raise CheckFailed(f"the stand-in did not receive the like function's two messages: {ably.delivered}")
    expect(likes.invoke(http_event("2.0", "GET", "/api/health")), 404, "a route the like function does not serve")


def check_lambda(report: Report, task: Path, settings: dict[str, str], ably: FakeAbly, database_url: str) -> None:
    pids: list[set[int]] = []
    with emulated("api", task, "functions.api.handler", settings) as api:
        http_flow(api, "2.0", ably, database_url, pids)
        http_flow(api, "1.0", ably, database_url, pids)
        with emulated("likes", task, "functions.likes.handler", settings) as likes:
            like_flow(api, likes, ably)
            report.init_ms.setdefault("likes", []).append(likes.init_ms())
        # A like whose publish fails is kept for the relay: the stand-in answers 503 this once.
        token = expect(api.invoke(http_event("2.0", "POST", "/api/auth/guest")), 200, "guest token")["token"]
        photo = expect(api.invoke(http_event("2.0", "GET", f"/api/events/{DEMO_SLUG}")), 200, "event")["photos"][1]
        ably.fail_status = 503
        like = http_event(
            "2.0", "POST", f"/api/photos/{photo['id']}/like", headers={"Authorization": f"Bearer {token}"}
        )
        expect(api.invoke(like), 200, "a like while the provider fails")
        ably.fail_status = None
        report.init_ms.setdefault("api", []).append(api.init_ms())
    distinct = set().union(*pids)
    if len(distinct) != 1 or any(sample != distinct for sample in pids[1:]):
        raise CheckFailed(f"warm invocations used database connections {pids}, not one")
    report.facts["api_invocations_on_one_connection"] = len(pids)
    time.sleep(1.2)  # the provider's first probe is due one second after its failure (core/outbox/publishing.py)
    before = len(published(ably, "photo:liked"))
    with emulated("relay", task, "functions.outbox_relay.handler", settings) as relay:
        result = relay.invoke(load("schedule.json"))
        report.init_ms.setdefault("relay", []).append(relay.init_ms())
    if result.get("published", 0) < 1 or len(published(ably, "photo:liked")) != before + 1:
        raise CheckFailed(f"the relay answered {result} and the stand-in has {ably.delivered}")
    report.facts["relay_result"] = result


def time_inits(report: Report, tasks: dict[str, tuple[Path, str]], settings: dict[str, str], bare_db: str) -> None:
    """Each function's INIT, the variants interleaved, INIT_RUNS cold starts each; a health call or a scheduled run."""
    health = http_event("2.0", "GET", "/api/health")
    for _ in range(INIT_RUNS):
        for name, (task, handler) in tasks.items():
            extra = {"BARE_DATABASE_URL": bare_db} if name == "bare" else None
            event = load("schedule.json") if "relay" in name else health
            env = {} if name == "bare" else settings
            with emulated(name, task, handler, env, extra) as function:
                function.invoke(event)
                report.init_ms.setdefault(name, []).append(function.init_ms())


# Vercel


def vercel_build(report: Report) -> Path:
    """`vercel build` on a copy of the repository's files (it writes uv.lock and .python-version into its source)."""
    source = TOOLS / "vercel-src"
    if source.exists():
        _make_writable(source)
        shutil.rmtree(source)
    files = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).split("\0")
    for name in filter(None, files):
        origin = ROOT / name
        if origin.is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    (source / ".vercel").mkdir()
    project = {"projectId": "prj_deploycheck", "orgId": "team_deploycheck", "settings": {"framework": None}}
    (source / ".vercel" / "project.json").write_text(json.dumps(project))
    # uv and Python 3.12 on PATH, as Vercel's build image has them.
    bin_dir = TOOLS / "vercel-bin"
    shutil.rmtree(bin_dir, ignore_errors=True)
    bin_dir.mkdir()
    (bin_dir / "python3.12").symlink_to(target_python())
    (bin_dir / "uv").symlink_to(TOOLS / "tools" / "bin" / "uv")
    node_dir = Path(shutil.which("node") or "/usr/bin/node").parent
    env = tool_env(PATH=f"{bin_dir}:{node_dir}:/usr/bin:/bin", VERCEL_PYTHON_COMPILEALL="1")
    output = run([str(ROOT / "node_modules" / ".bin" / "vercel"), "build", "--yes"], cwd=source, env=env)
    report.facts["vercel_build"] = [line for line in output.splitlines() if line.strip()][-1]
    return source


def check_vercel_static(source: Path) -> list[str]:
    """Vercel serves its build's static output at the site's root: the browser client and the SDK builds it loads,
    and nothing else (the source tree would be readable at /core/settings.py)."""
    static = source / ".vercel" / "output" / "static"
    served = sorted(str(path.relative_to(static)) for path in static.rglob("*") if path.is_file())
    wanted = [CLIENT_PATH, *sdk_paths()]
    missing = [path for path in wanted if path.lstrip("/") not in served]
    others = [name for name in served if not name.startswith("web/")]
    if missing or others:
        raise CheckFailed(f"Vercel's static output: missing {missing}, and serves {others[:10]} besides web/")
    for path in wanted:
        size = (static / path.lstrip("/")).stat().st_size
        if size < SCRIPT_MIN_BYTES:
            raise CheckFailed(f"Vercel's static {path} is {size} bytes")
    return served


def materialize_function(source: Path) -> tuple[Path, dict[str, Any]]:
    """The files the function ships (its .vc-config.json's filePathMap), in a read-only directory."""
    function = source / ".vercel" / "output" / "functions" / "api" / "index.func"
    config: dict[str, Any] = json.loads((function / ".vc-config.json").read_text())
    if config.get("runtime") != "python3.12":
        raise CheckFailed(f"the function's runtime is {config.get('runtime')}")
    task = TOOLS / "vercel-task"
    if task.exists():
        _make_writable(task)
        shutil.rmtree(task)
    shutil.copytree(function, task)
    shipped = config.get("filePathMap", {})
    for target, origin in shipped.items():
        (task / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / origin, task / target)
    unwanted = sorted({name.split("/")[0] for name in shipped} & {"tests", "web", "bench", "docs", "node_modules"})
    if unwanted:
        raise CheckFailed(f"the bundle ships {unwanted}")
    report_files = len(shipped)
    compiled = sum(1 for name in shipped if name.endswith(".pyc"))
    if compiled == 0:
        raise CheckFailed("the bundle has no bytecode (VERCEL_PYTHON_COMPILEALL)")
    _make_read_only(task)
    return task, {"files": report_files, "pyc": compiled}


def vercel_event(method: str, path: str, token: str | None = None) -> dict[str, Any]:
    headers = {"host": "deploy-check.vercel.app", "x-real-ip": "203.0.113.7"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return {"body": json.dumps({"method": method, "path": path, "headers": headers, "body": ""})}


def check_vercel(report: Report, task: Path, config: dict[str, Any], settings: dict[str, str], ably: FakeAbly) -> None:
    vc_config = json.loads((task / ".vc-config.json").read_text())
    env = dict(vc_config.get("environment", {}))
    with emulated("vercel", task, vc_config["handler"], settings, env) as function:
        expect(function.invoke(vercel_event("GET", "/api/health")), 200, "GET /api/health on Vercel")
        token = expect(function.invoke(vercel_event("POST", "/api/auth/guest")), 200, "guest token on Vercel")["token"]
        page = expect(function.invoke(vercel_event("GET", f"/api/events/{DEMO_SLUG}", token)), 200, "event on Vercel")
        before = len(published(ably, "photo:liked"))
        like = vercel_event("POST", f"/api/photos/{page['photos'][2]['id']}/like", token)
        if not expect(function.invoke(like), 200, "a like on Vercel")["changed"]:
            raise CheckFailed("the like on Vercel changed nothing")
        if len(published(ably, "photo:liked")) != before + 1:
            raise CheckFailed("the stand-in did not receive the like made on Vercel")
        report.init_ms.setdefault("vercel", []).append(function.init_ms())
    report.facts["vercel_bundle"] = config


# The whole check


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def print_table(report: Report) -> None:
    rows = [
        ("api (functions/api.handler)", "api", "api_uncompiled"),
        ("likes (functions/likes.handler)", "likes", None),
        ("relay (functions/outbox_relay.handler)", "relay", "relay_uncompiled"),
        ("bare FastAPI + Mangum", "bare", None),
        ("vercel (api/index.py)", "vercel", None),
    ]
    print("\nINIT (RIE's INIT REPORT, ms; median of the cold starts in this run)")
    print(f"{'function':42} {'bytecode ahead':>15} {'LAMBDA_COMPILE=0':>17} {'vs bare':>8}")
    bare = _median(report.init_ms["bare"]) if report.init_ms.get("bare") else None
    for label, name, before in rows:
        if not report.init_ms.get(name):
            continue
        ours = _median(report.init_ms[name])
        old = f"{_median(report.init_ms[before]):.0f}" if before and report.init_ms.get(before) else "-"
        ratio = f"{ours / bare:.2f}x" if bare and name != "bare" else "-"
        print(f"{label:42} {ours:>15.0f} {old:>17} {ratio:>8}")
    print("\nsteps (s): " + ", ".join(f"{name} {seconds}" for name, seconds in report.steps.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--compare-uncompiled",
        action="store_true",
        help="also build the zip with LAMBDA_COMPILE=0 and time its INIT (the numbers before the bytecode fix)",
    )
    compare_uncompiled = parser.parse_args(argv).compare_uncompiled
    report = Report()
    report.facts["load_average_at_start"] = os.getloadavg()[0]
    TOOLS.mkdir(exist_ok=True)
    started = time.monotonic()
    try:
        target_python()
        with report.step("tools and builds"):
            jobs = [
                Job("npm ci (osls, vercel)", npm_ci).start(),
                Job("tools venv (cfn-lint, uv)", install_tools).start(),
                Job("runtime venv (awslambdaric)", install_runtime).start(),
                Job("RIE from the aws-sam-cli wheel", download_rie).start(),
                Job("bare FastAPI + Mangum zip", build_bare_zip).start(),
            ]
            uncompiled = None
            if compare_uncompiled:
                with report.step("zip without the bytecode fix (LAMBDA_COMPILE=0)"):
                    uncompiled = build_zip(TOOLS / "uncompiled", compile_ahead=False)
                report.facts["zip_bytes_uncompiled"] = uncompiled.stat().st_size
            with report.step("zip (infra/aws/build_lambda.sh, x86_64)"):
                artifact = build_zip(ROOT / "build", compile_ahead=True)
            for job in jobs:
                job.wait(report)
        report.facts["zip_bytes"] = artifact.stat().st_size
        print(f"deploy-check: build/lambda.zip is {artifact.stat().st_size / 1e6:.1f} MB", flush=True)
        with report.step("serverless.yml: osls print, package; cfn-lint"):
            check_serverless(report)
        with contextlib.ExitStack() as stack:
            with report.step("database: create, hafi-realtime migrate, seed-demo"):
                database_url = stack.enter_context(fresh_database())
                migrate_and_seed(database_url)
            ably, ably_port = stack.enter_context(ably_standin())
            settings = deploy_settings(database_url, ably, ably_port, secrets.token_hex(32))
            tasks = TOOLS / "tasks"
            with report.step("Lambda: HTTP v2 and v1 flows, one connection, the relay (RIE + awslambdaric)"):
                ours = unpack_read_only(artifact, tasks / "ours")
                check_lambda(report, ours, settings, ably, database_url)
            with report.step(f"INIT: ours and the bare zip's, {INIT_RUNS} cold starts each"):
                bare = unpack_read_only(TOOLS / "bare" / "lambda.zip", tasks / "bare")
                with psycopg.connect(database_url, autocommit=True) as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS bench_bare_likes (id bigserial, photo_id bigint)")
                variants = {
                    "api": (ours, "functions.api.handler"),
                    "likes": (ours, "functions.likes.handler"),
                    "relay": (ours, "functions.outbox_relay.handler"),
                    "bare": (bare, "bare_lambda.handler"),
                }
                if uncompiled is not None:
                    old = unpack_read_only(uncompiled, tasks / "uncompiled")
                    variants["api_uncompiled"] = (old, "functions.api.handler")
                    variants["relay_uncompiled"] = (old, "functions.outbox_relay.handler")
                time_inits(report, variants, settings, database_url)
            with report.step("vercel build (offline, fake project, VERCEL_PYTHON_COMPILEALL=1)"):
                source = vercel_build(report)
                report.facts["vercel_static"] = check_vercel_static(source)
                task, bundle = materialize_function(source)
            with report.step("Vercel function: production start, health, guest, like (RIE + awslambdaric)"):
                check_vercel(report, task, bundle, settings, ably)
    except CheckFailed as exc:
        print(f"\ndeploy-check FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    report.facts["total_seconds"] = round(time.monotonic() - started, 1)
    report.facts["load_average_at_end"] = os.getloadavg()[0]
    report.facts["cpus"] = os.cpu_count()
    RESULTS.parent.mkdir(exist_ok=True)
    medians = {name: _median(values) for name, values in report.init_ms.items()}
    RESULTS.write_text(
        json.dumps(
            {"init_ms_median": medians, "init_ms": report.init_ms, "steps_s": report.steps, **report.facts}, indent=2
        )
        + "\n"
    )
    print_table(report)
    print(
        f"deploy-check: all steps passed in {report.facts['total_seconds']} s; results in {RESULTS.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
