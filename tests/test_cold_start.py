"""What a cold start imports: the realtime SDKs load only where their provider is chosen; PyJWT only when a token is
first issued or verified, and then without the ``cryptography`` package; SQLAlchemy's ORM not at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.api.parts import PARTS
from core.gc_tuning import GC_THRESHOLDS
from tests.support.api import Api, bearer
from tests.support.lambda_events import http_event

REPO = Path(__file__).parent.parent
HEAVY = ["ably", "pusher", "socketio", "engineio", "redis", "pgserver", "uvicorn"]


ENV = {"DATABASE_URL": "postgresql://localhost/none", "JWT_SECRET": "cold-start-0123456789abcdef-0123456789"}

# Code for a child process: ``run_before_loading(name, work)`` makes the import of module ``name`` call ``work()``
# just before that module's own code runs, so a test can act exactly while it loads.
RUN_BEFORE_LOADING = (
    "import importlib.machinery, sys\n"
    "class _RunningFirst:\n"
    "    def __init__(self, loader, work):\n"
    "        self.loader, self.work = loader, work\n"
    "    def create_module(self, spec):\n"
    "        return self.loader.create_module(spec)\n"
    "    def exec_module(self, module):\n"
    "        self.work()\n"
    "        self.loader.exec_module(module)\n"
    "class _WhenLoading:\n"
    "    def __init__(self, name, work):\n"
    "        self.name, self.work = name, work\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name != self.name:\n"
    "            return None\n"
    "        spec = importlib.machinery.PathFinder.find_spec(name, path)\n"
    "        spec.loader = _RunningFirst(spec.loader, self.work)\n"
    "        return spec\n"
    "def run_before_loading(name, work):\n"
    "    sys.meta_path.insert(0, _WhenLoading(name, work))\n"
)


def _in_a_new_process(code: str, env: dict[str, str]) -> Any:
    """What ``code``, run by a fresh interpreter, printed last, as JSON."""
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _loaded_modules(module: str, env: dict[str, str]) -> list[str]:
    loaded: list[str] = _in_a_new_process(f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))", env)
    return loaded


def _modules_after_import(module: str, env: dict[str, str]) -> set[str]:
    return {name.split(".")[0] for name in _loaded_modules(module, env)}


@pytest.mark.parametrize("module", ["functions.api", "functions.likes", "functions.outbox_relay"])
def test_a_function_with_the_memory_provider_loads_no_realtime_sdk(module: str) -> None:
    loaded = _modules_after_import(module, {**ENV, "PATH": "/usr/bin"})

    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_like_function_loads_the_like_routes_and_no_others() -> None:
    loaded = set(_loaded_modules("functions.likes", {**ENV, "PATH": "/usr/bin"}))

    assert "core.api.routes.likes" in loaded
    others = {name for name in loaded if name.startswith("core.api.routes.") and name != "core.api.routes.likes"}
    assert not others, sorted(others)


@pytest.mark.parametrize("module", ["functions.api", "functions.likes"])
def test_a_function_loads_pyjwt_only_when_a_token_is_first_handled(module: str) -> None:
    loaded = _modules_after_import(module, {**ENV, "PATH": "/usr/bin"})

    assert not loaded & {"jwt", "cryptography"}, sorted(loaded & {"jwt", "cryptography"})


def test_pyjwt_handles_our_tokens_without_loading_cryptography() -> None:
    """``core.auth.load_pyjwt`` says why; afterwards, anything that needs ``cryptography`` still loads it."""
    code = (
        "import json, sys\n"
        "from core.auth import Principal, issue_token, verify_token\n"
        "from core.settings import load_settings\n"
        "settings = load_settings()\n"
        "token, _ = issue_token(Principal(role='GUEST', subject='guest-1'), settings)\n"
        "verified = verify_token(token, settings)\n"
        "loaded_for_tokens = 'cryptography' in sys.modules\n"
        "import cryptography.hazmat.primitives.hashes\n"
        "print(json.dumps({'subject': verified.subject, 'loaded_for_tokens': loaded_for_tokens}))"
    )
    after = _in_a_new_process(code, {**ENV, "PATH": "/usr/bin"})

    assert after == {"subject": "guest-1", "loaded_for_tokens": False}


def test_another_thread_importing_cryptography_while_pyjwt_loads_gets_it() -> None:
    """PyJWT goes without ``cryptography`` only in the thread that loads it: a thread that imports ``cryptography``
    meanwhile (here, exactly while PyJWT's algorithms module runs) gets it, and it stays loaded."""
    code = RUN_BEFORE_LOADING + (
        "import json, threading\n"
        "from core.auth import load_pyjwt\n"
        "outcome = {}\n"
        "def other_thread():\n"
        "    try:\n"
        "        import cryptography.x509\n"
        "        outcome['other_thread'] = 'imported'\n"
        "    except ImportError as exc:\n"
        "        outcome['other_thread'] = repr(exc)\n"
        "def run_the_other_thread():\n"
        "    thread = threading.Thread(target=other_thread)\n"
        "    thread.start()\n"
        "    thread.join(30)\n"
        "run_before_loading('jwt.algorithms', run_the_other_thread)\n"
        "load_pyjwt()\n"
        "import jwt\n"
        "outcome['cryptography'] = type(sys.modules.get('cryptography')).__name__\n"
        "outcome['pyjwt'] = jwt.__name__\n"
        "print(json.dumps(outcome))"
    )
    after = _in_a_new_process(code, {**ENV, "PATH": "/usr/bin"})

    assert after == {"other_thread": "imported", "cryptography": "module", "pyjwt": "jwt"}


async def _a_like_in_a_new_process(api: Api, module: str) -> dict[str, Any]:
    """A like answered by ``module``'s handler, imported by a fresh interpreter: the answer, and the modules of
    SQLAlchemy's ORM, of our routes and of our models loaded by then."""
    photo_id, _ = await api.event("wedding")
    like = http_event("2.0", "POST", f"/api/photos/{photo_id}/like", headers=bearer(await api.guest()))
    settings = api.runtime.settings
    env = {
        "PATH": "/usr/bin",
        "DATABASE_URL": settings.require_database_url(),
        "JWT_SECRET": settings.require_jwt_secret(),
        "REALTIME_PROVIDER": "memory",
    }
    code = (
        "import json, sys\n"
        f"from {module} import handler\n"
        "class Context:\n"
        "    function_name, memory_limit_in_mb, aws_request_id = 'test', 512, 'test'\n"
        "    def get_remaining_time_in_millis(self): return 30000\n"
        f"answer = handler(json.loads({json.dumps(like)!r}), Context())\n"
        "loaded = lambda prefix: sorted(name for name in sys.modules if name.startswith(prefix))\n"
        "print(json.dumps({'status': answer['statusCode'], 'body': json.loads(answer['body']),"
        " 'orm': loaded('sqlalchemy.orm'), 'routes': loaded('core.api.routes.'), 'schemas': loaded('core.schemas')}))"
    )
    after: dict[str, Any] = _in_a_new_process(code, env)
    assert after["status"] == 200, after["body"]
    assert after["body"]["likeCount"] == 1
    return after


@pytest.mark.parametrize("module", ["functions.api", "functions.likes"])
async def test_a_function_answers_a_like_without_loading_sqlalchemys_orm(api: Api, module: str) -> None:
    """``core.deferred_orm`` says why: nothing here uses the ORM, and importing it is a tenth of a cold start."""
    after = await _a_like_in_a_new_process(api, module)

    assert after["orm"] == []


@pytest.mark.parametrize("module", ["functions.api", "functions.likes"])
async def test_a_function_answers_a_like_having_built_the_like_models_alone(api: Api, module: str) -> None:
    """Creating a pydantic model's class is what the models cost a cold start; a like needs none of the others."""
    after = await _a_like_in_a_new_process(api, module)

    assert after["schemas"] == ["core.schemas", "core.schemas.base", "core.schemas.likes"]


async def test_the_api_function_answers_a_like_having_loaded_the_like_routes_alone(api: Api) -> None:
    """``core.api.parts`` says why: the whole API includes each part on the first request that may need it."""
    after = await _a_like_in_a_new_process(api, "functions.api")

    assert after["routes"] == ["core.api.routes.likes"]


def test_what_asks_for_sqlalchemys_async_session_gets_it(database_url: str) -> None:
    """The ORM half of ``sqlalchemy.ext.asyncio`` loads on first use, the real classes, and works."""
    code = (
        "import asyncio, json, sys\n"
        "import core\n"
        "import sqlalchemy.ext.asyncio as package\n"
        "from sqlalchemy import text\n"
        "from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine\n"
        "before = 'sqlalchemy.orm' in sys.modules\n"
        "from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker\n"
        "from sqlalchemy.ext.asyncio.session import AsyncSession as Real\n"
        f"engine = create_async_engine({database_url!r})\n"
        "async def one() -> int:\n"
        "    async with async_sessionmaker(engine)() as session:\n"
        "        value = await session.scalar(text('SELECT 1'))\n"
        "    await engine.dispose()\n"
        "    return value\n"
        "print(json.dumps({'before': before, 'real': AsyncSession is Real, 'engine': isinstance(engine, AsyncEngine),"
        " 'scoped': package.async_scoped_session.__name__, 'missing': hasattr(package, 'no_such_name'),"
        " 'selected': asyncio.run(one())}))"
    )
    after = _in_a_new_process(code, {"PATH": "/usr/bin"})

    assert after == {
        "before": False,
        "real": True,
        "engine": True,
        "scoped": "async_scoped_session",
        "missing": False,
        "selected": 1,
    }


def test_looking_the_package_up_before_importing_it_still_leaves_the_orm_unloaded() -> None:
    code = (
        "import importlib.util, json, sys\n"
        "import core\n"
        "importlib.util.find_spec('sqlalchemy.ext.asyncio')\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "print(json.dumps('sqlalchemy.orm' in sys.modules))"
    )

    assert _in_a_new_process(code, {"PATH": "/usr/bin"}) is False


def test_another_thread_asking_for_async_session_while_it_loads_waits_and_gets_it() -> None:
    """A thread that reads ``AsyncSession`` while another runs the package's deferred half (paused here, exactly
    then) waits for it instead of finding the name missing."""
    code = RUN_BEFORE_LOADING + (
        "import json, threading\n"
        "import core\n"
        "import sqlalchemy.ext.asyncio as package\n"
        "outcome = {}\n"
        "def other_thread():\n"
        "    try:\n"
        "        outcome['other_thread'] = package.AsyncSession.__name__\n"
        "    except AttributeError as exc:\n"
        "        outcome['other_thread'] = repr(exc)\n"
        "thread = threading.Thread(target=other_thread)\n"
        "def start_the_other_thread():\n"
        "    thread.start()\n"
        "    thread.join(0.5)\n"
        "    outcome['waited'] = thread.is_alive()\n"
        "run_before_loading('sqlalchemy.ext.asyncio.scoping', start_the_other_thread)\n"
        "outcome['this_thread'] = package.AsyncSession.__name__\n"
        "thread.join(30)\n"
        "print(json.dumps(outcome))"
    )
    after = _in_a_new_process(code, {"PATH": "/usr/bin"})

    assert after == {"waited": True, "this_thread": "AsyncSession", "other_thread": "AsyncSession"}


@pytest.mark.parametrize("module", ["functions.api", "functions.likes"])
def test_a_snapstart_init_loads_pyjwt_before_the_snapshot(module: str) -> None:
    """Under SnapStart the INIT is paid once, when a version is published, and restored from its snapshot: what the
    first request would load is loaded there instead."""
    loaded = _modules_after_import(module, {**ENV, "PATH": "/usr/bin", "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})

    assert "jwt" in loaded


def test_a_snapstart_init_of_the_api_function_includes_every_part_of_the_api() -> None:
    loaded = set(
        _loaded_modules("functions.api", {**ENV, "PATH": "/usr/bin", "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})
    )

    assert {f"core.api.routes.{part.module}" for part in PARTS} <= loaded


@pytest.mark.parametrize("module", ["functions.api", "functions.likes", "functions.outbox_relay", "api.index"])
def test_a_function_builds_without_collecting_garbage_and_freezes_what_it_built(module: str) -> None:
    """Everything a cold start imports and builds stays alive: a collection during it finds nothing and costs time
    (bench/coldstart.py). Afterwards the collector is on again, with what was built frozen out of its passes."""
    # As deployed, bytecode compiled ahead (compiling a module allocates too); what the entry points import before
    # their build starts imported already, and the young generation emptied: so that only the build is watched.
    code = (
        "import compileall, contextlib, gc, json, logging, os, typing\n"
        f"for folder in ('core', 'functions', 'api'): compileall.compile_dir({str(REPO)!r} + '/' + folder, quiet=1)\n"
        "gc.collect()\n"
        "starts = []\n"
        "gc.callbacks.append(lambda phase, info: starts.append(info['generation']) if phase == 'start' else None)\n"
        f"import {module}\n"
        "print(json.dumps({'collections': len(starts), 'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(),"
        " 'thresholds': gc.get_threshold()}))"
    )
    after = _in_a_new_process(code, {**ENV, "PATH": "/usr/bin"})

    assert after["collections"] == 0
    assert after["enabled"] is True
    assert after["frozen"] > 10_000
    assert tuple(after["thresholds"]) == GC_THRESHOLDS
