"""A real headless browser for tests of what people look at: Debian's chromium.

Installed by the test setup where missing (`apt-get install chromium`, as root); a
machine that cannot install it fails the tests that need it, with the reason.
"""

from __future__ import annotations

import re
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


# Measures the page as laid out, into attributes of <body> that --dump-dom shows: the
# elements reaching past the viewport's right edge, and the smallest text drawn (an
# SVG's text at its font size times the SVG's scale on screen).
_LAYOUT_PROBE = """<script>(() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.body.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > width + 1);
  let smallest = Infinity, where = '';
  for (const e of document.body.querySelectorAll('*')) {
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const svg = e.closest('svg');
    const size = parseFloat(getComputedStyle(e).fontSize) * (svg ? svg.getScreenCTM().a : 1);
    if (size < smallest) { smallest = size; where = e.textContent.trim().slice(0, 40); }
  }
  document.body.dataset.overflowing = wide.map(e => e.tagName + ':' + Math.round(e.getBoundingClientRect().right)).join(' ');
  document.body.dataset.smallestText = smallest.toFixed(1);
  document.body.dataset.smallestTextIs = where;
})();</script>"""


@dataclass(frozen=True)
class Rendered:
    dom: str
    console: list[str]
    """What the page's scripts logged, errors included ("Uncaught ...")."""

    @property
    def overflowing(self) -> str:
        """The elements reaching past the viewport's right edge (`tag:right`), or ''."""
        return self._attribute("data-overflowing")

    @property
    def smallest_text_px(self) -> float:
        return float(self._attribute("data-smallest-text"))

    def _attribute(self, name: str) -> str:
        found = re.search(rf'<body[^>]* {name}="([^"]*)"', self.dom)
        assert found is not None, f"the layout probe did not run ({name})"
        return found.group(1)


def render(page: Path, screenshot: Path, width: int = 900, height: int = 3400) -> Rendered:
    """Open `page` as a person's browser would, keep a screenshot, and return the DOM
    after its scripts ran (and the layout probe's measures) and the console messages."""
    browser = chromium()
    url = page.resolve().as_uri()
    probed = page.with_name(page.stem + ".probed.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", _LAYOUT_PROBE + "</body>"), encoding="utf-8")
    shown = subprocess.run([browser, *_FLAGS, f"--window-size={width},{height}", "--dump-dom", probed.resolve().as_uri()],
                           capture_output=True, text=True, timeout=120)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, *_FLAGS, f"--window-size={width},{height}", f"--screenshot={screenshot}", url],
                   capture_output=True, timeout=120, check=True, cwd=screenshot.parent)
    console = [line for line in shown.stderr.splitlines() if ":CONSOLE" in line]
    return Rendered(shown.stdout, console)
