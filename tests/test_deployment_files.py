"""Heroku's files agree with each other and with what the tests run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

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
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"{line} is not pinned with =="
            pins[name] = pinned
    for required in ("mcp", "starlette", "uvicorn", "httpx", "pydantic-settings", "jinja2"):
        assert required in {p.lower() for p in pins}, required
    mismatched = {n: (p, version(n)) for n, p in pins.items() if version(n) != p}
    assert mismatched == {}


def test_runtime_matches_the_python_the_tests_run_on() -> None:
    runtime = (ROOT / "runtime.txt").read_text().strip()
    assert runtime == "python-3.11"  # pyproject.toml: requires-python = ">=3.11,<3.12"
    assert sys.version_info[:2] == (3, 11)


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
