"""Heroku's files agree with each other and with what the tests run."""

from __future__ import annotations

import json
import platform
import re
import shlex
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet

from app.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[1]
# What a Heroku deploy cannot run without: the Custom Client deployment's three coordinates.
SALESFORCE_SETTINGS = {"MIAW_SCRT_URL", "MIAW_ORG_ID", "MIAW_ES_DEVELOPER_NAME"}


def test_procfile_web_command_exists_and_binds_port() -> None:
    line = (ROOT / "Procfile").read_text().strip()
    # Heroku routes to the web dyno on 0.0.0.0:$PORT; `serve` reads PORT itself (checked below).
    assert line == "web: python -m app serve --host 0.0.0.0"
    args = line.removeprefix("web: python -m app ").split()
    help_text = subprocess.run(
        [sys.executable, "-m", "app", *args, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert "--port" in help_text and "PORT" in help_text


def test_requirements_pin_exactly_what_the_tests_run_on() -> None:
    pins = {}
    for raw in (ROOT / "requirements.txt").read_text().splitlines():
        # A pin may carry an environment marker (`; python_version < "3.12"`): a pin whose
        # marker does not hold here is not installed here.
        line, _, marker = raw.split("#", 1)[0].partition(";")
        line = line.strip()
        if line and (not marker.strip() or Marker(marker.strip()).evaluate()):
            name, _, pinned = line.partition("==")
            assert pinned, f"{line} is not pinned with =="
            pins[name] = pinned
    for required in ("mcp", "starlette", "uvicorn", "httpx", "pydantic-settings", "jinja2"):
        assert required in {p.lower() for p in pins}, required
    mismatched = {n: (p, version(n)) for n, p in pins.items() if version(n) != p}
    assert mismatched == {}


def version_lines(path: Path) -> list[str]:
    """The lines Heroku's Python buildpack reads from a version file: stripped, without blank lines
    and `#` comments."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_heroku_deploys_python_3_11_whichever_version_file_it_reads() -> None:
    # The buildpack reads runtime.txt first (deprecated, but kept: `python-3.X`), then
    # .python-version (`3.X`, what it recommends); both name 3.11, so the deploy stays on 3.11 when
    # runtime.txt goes. A major version only: each build gets 3.11's latest patch release.
    assert version_lines(ROOT / "runtime.txt") == ["python-3.11"]
    assert version_lines(ROOT / ".python-version") == ["3.11"]


def test_supported_pythons_are_3_11_to_3_13_and_include_heroku_and_this_one() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.14"
    supported = SpecifierSet(requires)
    assert "3.11.99" in supported  # what Heroku deploys (above), at any patch release
    assert platform.python_version() in supported


@pytest.mark.parametrize("minor", [10, 11, 12, 13, 14])
def test_make_builds_the_venv_only_with_a_python_requires_python_allows(
    minor: int, tmp_path: Path
) -> None:
    # .ci/find-python picks or checks make's interpreter; a stand-in reports version 3.<minor>.
    fake = tmp_path / f"python3.{minor}"
    pretend = f'import sys; sys.version_info = (3, {minor}, 0, "final", 0); exec(sys.argv[1])'
    fake.write_text(
        f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(pretend)} "$2"\n'
    )
    fake.chmod(0o755)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    found = subprocess.run(
        ["bash", ".ci/find-python", str(fake)], capture_output=True, text=True, cwd=ROOT
    )
    if f"3.{minor}.0" in SpecifierSet(requires):
        assert (found.returncode, found.stdout.strip()) == (0, sys.executable), found.stderr
    else:
        assert found.returncode == 1
        assert f"PYTHON={fake} is not Python 3.11, 3.12 or 3.13 ({fake}: Python 3.{minor})" in (
            found.stderr
        )


def test_app_json_is_valid_and_names_every_required_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manifest = json.loads((ROOT / "app.json").read_text())
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]
    assert manifest["formation"]["web"]["quantity"] >= 1
    env = manifest["env"]
    assert {name for name, spec in env.items() if spec["required"] is True} == SALESFORCE_SETTINGS
    assert all(spec["description"] for spec in env.values())
    # ... and they are what the app refuses to serve without.
    for name in SALESFORCE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as refused:
        Settings(_env_file=None).require_salesforce()  # type: ignore[call-arg]
    named = set(re.findall(r"\b[A-Z][A-Z_]+[A-Z]\b", str(refused.value)))
    assert named == SALESFORCE_SETTINGS
    readme = (ROOT / "README.md").read_text()
    for name in env:
        assert re.search(rf"`{name}`", readme), f"{name} is not documented in the README"


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.M))
    expected = {name.upper() for name in Settings.model_fields}
    assert documented == expected
