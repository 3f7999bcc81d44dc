"""Headless Chromium for the dashboard's browser test and benchmark: Debian's ``chromium``
(no browser download), with the flags that keep it off the network."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
SYSTEM_DEPS = "sudo make system-deps"  # the one command that installs it (Debian)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    """A headless Chromium browser from a running ``sync_playwright()`` context."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
