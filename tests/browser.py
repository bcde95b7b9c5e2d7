"""A real headless browser for tests of what people look at: Debian's chromium.

Installed by the test setup where missing (`apt-get install chromium`, as root); a
machine that cannot install it fails the tests that need it, with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0")


def chromium() -> str:
    """The chromium executable, installed first if missing."""
    found = shutil.which("chromium")
    if found is not None:
        return found
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)
    found = shutil.which("chromium")
    assert found is not None, "chromium was installed but is not on PATH"
    return found


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]
    """What the page's scripts logged, errors included ("Uncaught ...")."""


def render(page: Path, screenshot: Path, width: int = 900, height: int = 3400) -> Rendered:
    """Open `page` as a person's browser would, keep a screenshot, and return the DOM
    after its scripts ran and the console messages."""
    browser = chromium()
    url = page.resolve().as_uri()
    shown = subprocess.run([browser, *_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, *_FLAGS, f"--window-size={width},{height}", f"--screenshot={screenshot}", url],
                   capture_output=True, timeout=120, check=True, cwd=screenshot.parent)
    console = [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(shown.stdout, console)
