"""The client address that per-address limits count comes only from what the deployment's own edge vouches for
(issue 9, vulnerability 1): the shipped nginx configuration in front of uvicorn started as compose starts it, API
Gateway's source IP on Lambda, Vercel's X-Real-IP. A client that sends X-Forwarded-For (or X-Real-IP) of its choice
is still counted at its own address."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.api.client_address import UNKNOWN, normalize
from core.settings import get_settings
from tests.support import processes
from tests.support.api import Api
from tests.support.ports import free_port
from tests.test_security_limits import CODE, client_from, limits

INFRA = Path(__file__).parent.parent / "infra"
NGINX = "/usr/sbin/nginx"
WRONG = {"eventSlug": "private-party", "accessCode": "wrong-code"}


async def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((INFRA / "compose.yml").read_text())
    return compose


@contextlib.contextmanager
def _uvicorn_as_compose_starts_it(api: Api, nginx_address: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The compose API service's command (uvicorn on the app factory) with its client-address settings; the test's
    own database, provider and secret, and nginx's address as this test runs it."""
    compose_env = _compose()["x-python"]["environment"]
    compose_nginx_address = _compose()["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    assert compose_env["FORWARDED_ALLOW_IPS"] == compose_nginx_address, "compose must trust nginx, and only nginx"
    port = free_port()
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": api.runtime.settings.require_database_url(),
        "JWT_SECRET": api.runtime.settings.require_jwt_secret(),
        "REALTIME_PROVIDER": "memory",
        "CLIENT_ADDRESS_SOURCE": compose_env["CLIENT_ADDRESS_SOURCE"],
        "FORWARDED_ALLOW_IPS": nginx_address,
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "uvicorn", "core.api.app:create_server_app", "--factory"]
    process = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], env=env)
    try:
        yield port, process
    finally:
        processes.stop(process)


def _site_for_test(conf: str, *, listen: int, api: int) -> str:
    """The shipped site with its listen address and upstream servers moved to the test's loopback ports; every
    proxy directive stays as shipped."""
    site = (INFRA / "nginx" / conf).read_text()
    site = re.sub(r"^\s*listen \[::\]:80;\n", "", site, flags=re.M)
    site = re.sub(r"listen 80;", f"listen 127.0.0.1:{listen};", site)
    site = re.sub(r"server (api|127\.0\.0\.1):8000;", f"server 127.0.0.1:{api};", site)
    unused = iter(range(1, 10))
    site = re.sub(r"server [\w.-]+:800[12];", lambda _: f"server 127.0.0.{next(unused)}:9;", site)
    assert f"127.0.0.1:{api}" in site and f"127.0.0.1:{listen}" in site
    return site


@contextlib.contextmanager
def _nginx(conf: str, *, api: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    prefix = Path(tempfile.mkdtemp(prefix="hafi-nginx-"))
    listen = free_port()
    (prefix / "site.conf").write_text(_site_for_test(conf, listen=listen, api=api))
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (prefix / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n    access_log off;\n{temp_paths}\n    include {prefix / 'site.conf'};\n}}\n"
    )
    process = subprocess.Popen(
        [NGINX, "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]
    )
    try:
        yield listen, process
    finally:
        processes.stop(process)
        shutil.rmtree(prefix, ignore_errors=True)


@pytest.fixture
def nginx_binary() -> str:
    if not os.path.exists(NGINX):
        if os.environ.get("NGINX_REQUIRED"):
            raise RuntimeError(f"NGINX_REQUIRED is set but {NGINX} is missing (apt-get install nginx)")
        pytest.skip("Debian's nginx is not installed")
    return NGINX


async def _guesses_from(base: str, source: str, count: int) -> list[int]:
    """``count`` wrong codes from ``source``, each claiming another address in X-Forwarded-For and X-Real-IP."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        statuses = []
        for i in range(count):
            spoofed = f"10.{i // 250}.{i % 250}.1"
            headers = {"X-Forwarded-For": spoofed, "X-Real-IP": spoofed}
            statuses.append((await client.post("/api/auth/guest", json=WRONG, headers=headers)).status_code)
        return statuses


@pytest.mark.parametrize("conf", ["compose.conf", "hafi-realtime.conf"])
async def test_spoofed_forwarded_addresses_through_the_shipped_nginx_are_still_limited(
    api: Api, nginx_binary: str, conf: str
) -> None:
    await api.event("private-party", access_code=CODE)

    with _uvicorn_as_compose_starts_it(api, nginx_address="127.0.0.1") as (api_port, uvicorn):
        await _wait_for_port(api_port, uvicorn, "uvicorn")
        with _nginx(conf, api=api_port) as (nginx_port, nginx):
            await _wait_for_port(nginx_port, nginx, "nginx")
            base = f"http://127.0.0.1:{nginx_port}"
            attacker = await _guesses_from(base, "127.0.0.2", 61)
            neighbour = await _guesses_from(base, "127.0.0.3", 1)

    assert attacker == [403] * 60 + [429]
    assert neighbour == [403]  # the attacker's address was limited, not everyone behind nginx


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, api: Api) -> Iterator[None]:
    for name in list(os.environ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", api.runtime.settings.require_database_url())
    monkeypatch.setenv("JWT_SECRET", api.runtime.settings.require_jwt_secret())
    monkeypatch.setenv("APP_ENV", "test")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("version", ["2.0", "1.0"])
async def test_on_lambda_the_api_gateway_source_ip_is_counted_not_the_forwarded_header(
    api: Api, lambda_env: None, version: str
) -> None:
    from tests.support.lambda_events import FakeContext, http_event
    from tests.test_lambda import _fresh_import

    await api.event("private-party", access_code=CODE)
    functions_api = _fresh_import("functions.api")

    def guess(i: int) -> int:
        spoofed = f"10.0.{i}.1"
        event = http_event(
            version, "POST", "/api/auth/guest", headers={"X-Forwarded-For": spoofed, "X-Real-IP": spoofed}, body=WRONG
        )
        response: dict[str, Any] = functions_api.handler(event, FakeContext())
        return int(response["statusCode"])

    statuses = [await asyncio.to_thread(guess, i) for i in range(61)]

    assert statuses == [403] * 60 + [429]
    await functions_api.app.state.runtime.engine.dispose()


async def test_on_vercel_the_edges_x_real_ip_is_counted_not_the_forwarded_header(api: Api) -> None:
    await api.event("private-party", access_code=CODE)

    with limits(api, client_address_source="vercel"):
        # The ASGI peer is Vercel's own machinery; the client is in X-Real-IP, which Vercel's edge writes.
        async with client_from(api, "169.254.100.1") as vercel:
            attacker = [
                (
                    await vercel.post(
                        "/api/auth/guest",
                        json=WRONG,
                        headers={"X-Real-IP": "203.0.113.50", "X-Forwarded-For": f"10.0.{i}.1, 203.0.113.50"},
                    )
                ).status_code
                for i in range(61)
            ]
            neighbour = await vercel.post("/api/auth/guest", json=WRONG, headers={"X-Real-IP": "203.0.113.51"})

    assert attacker == [403] * 60 + [429]
    assert neighbour.status_code == 403


def test_addresses_are_normalized_so_a_client_cannot_make_itself_many() -> None:
    assert normalize("203.0.113.7") == "203.0.113.7"
    assert normalize("::ffff:203.0.113.7") == "203.0.113.7"
    # Any address in an IPv6 /64 is one client: a home or a phone gets the whole /64.
    assert normalize("2001:db8:1:2::1") == normalize("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert normalize("2001:db8:1:3::1") != normalize("2001:db8:1:2::1")
    # What the edge did not vouch for is one shared unknown client, however it is spelt.
    assert normalize("x" * 300) == normalize("203.0.113.7, 10.0.0.1") == normalize(None) == UNKNOWN
