"""What the deploy artifacts ship: the Lambda zip holds the source's modules and no others, and Vercel's installer
(``[project].dependencies`` only) brings every module production code imports."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.deploy.artifacts import (
    ROOT,
    first_party_differences,
    installed_from_project_dependencies,
    production_imports,
    unwanted_files,
)
from tests.support.web_client import CLIENT_PATH, sdk_paths

REPO = Path(__file__).parent.parent


def test_every_module_production_code_imports_is_installed_by_vercels_installer() -> None:
    imported = production_imports()

    assert {"ably", "pusher"} <= imported  # lazily imported SDKs count: a deploy may choose either provider
    assert not imported - installed_from_project_dependencies()


def test_what_a_part_of_the_api_imports_counts_though_parts_are_imported_by_name(tmp_path: Path) -> None:
    """The API includes its parts on demand (``core.api.parts``), importing each by a name built at run time:
    what only a part's modules import must still be found, or a deploy could ship without it."""
    repo = _copy_of_the_repository(tmp_path)
    service = repo / "core" / "services" / "likes.py"  # imported by the like part's routes alone
    service.write_text(service.read_text() + "\nimport an_sdk_no_deploy_installs  # noqa\n")

    assert "an_sdk_no_deploy_installs" in production_imports(repo)


def _copy_of_the_repository(target: Path) -> Path:
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source = ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())
    return target


def _build_without_dependencies(repo: Path) -> list[str]:
    env = os.environ | {"LAMBDA_NO_DEPS": "1", "LAMBDA_ARCH": "x86_64", "VENV": str(ROOT / ".venv")}
    result = subprocess.run(
        ["bash", "infra/aws/build_lambda.sh"], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(repo / "build" / "lambda.zip") as zipped:
        return zipped.namelist()


def test_a_module_deleted_from_the_source_is_gone_from_the_next_zip(tmp_path: Path) -> None:
    repo = _copy_of_the_repository(tmp_path)
    obsolete = repo / "core" / "obsolete_feature.py"
    obsolete.write_text('"""Removed in the next commit."""\n')
    first = _build_without_dependencies(repo)
    obsolete.unlink()

    second = _build_without_dependencies(repo)

    assert "core/obsolete_feature.py" in first
    assert first_party_differences(second, repo) == (set(), set())
    assert not unwanted_files(second)
    assert {CLIENT_PATH, *sdk_paths()} <= {f"/{name}" for name in second}  # what the API function serves at /web/


def test_vercels_entry_assigns_its_app_at_the_top_level_of_the_file() -> None:
    """Vercel's builder reads ``api/index.py`` before it runs anything and refuses an entry without a top-level
    ``app``, ``application`` or ``handler`` assignment; one inside a block (``with``, ``if``) it does not see."""
    module = ast.parse((REPO / "api" / "index.py").read_text())
    assigned = {
        target.id
        for statement in module.body
        if isinstance(statement, ast.Assign)
        for target in statement.targets
        if isinstance(target, ast.Name)
    }

    assert "app" in assigned
