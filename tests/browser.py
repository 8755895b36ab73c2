"""Headless Chromium for the browser tests: Debian's `chromium` on PATH, else the Chromium that
Playwright downloaded for itself (`python -m playwright install chromium`). `make test` runs
.ci/ensure-browser first, which makes sure one of them is there."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

# Without the background-networking flags Chromium keeps dialing out on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def downloaded(path: str) -> bool:
    return Path(path).is_file()


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        executable = shutil.which("chromium")
        if executable is None and downloaded(playwright.chromium.executable_path):
            executable = playwright.chromium.executable_path
        if executable is None:
            pytest.fail(
                "The browser tests need Chromium: there is no chromium on PATH, nor one downloaded "
                "by Playwright. `bash .ci/ensure-browser` installs one or prints the command to "
                "run (make test runs it first).",
                pytrace=False,
            )
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
