"""A disk that fills up: a command run with its home on a tmpfs of a set size.

The tmpfs is mounted in a private mount namespace of the command alone (`unshare`, as
the user's own root: no privileges needed), so nothing of the machine is touched. The
home is copied onto it before the command and back after, so the test then sees what
the command left, as it would be on a real disk that had filled up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.cli import ROOT

PAGE = 4096
_SCRIPT = """
mount -t tmpfs -o size="$SMALL_SIZE" tmpfs "$SMALL" && cp -a "$HOME_DIR/." "$SMALL/" || exit 99
"$@"; status=$?
rm -rf "$HOME_DIR" && cp -a "$SMALL" "$HOME_DIR" || exit 98
exit $status
"""


def footprint(directory: Path) -> int:
    """What `directory` takes on a tmpfs: its files' sizes in whole pages."""
    sizes = (p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory.exists() else ()
    return sum(-(-size // PAGE) * PAGE for size in sizes)


def run_with_free_space(home: Path, free: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `argv` (which names the home as `{home}`) with `free` bytes left on the disk
    beside what the home holds."""
    home.mkdir(parents=True, exist_ok=True)
    small = home.with_name(home.name + ".small")
    small.mkdir(exist_ok=True)
    size = footprint(home) + free + 16 * PAGE  # the directories' own pages
    environment = {**os.environ, "SMALL": str(small), "SMALL_SIZE": str(size), "HOME_DIR": str(home)}
    command = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _SCRIPT,
               "sh", *(arg.replace("{home}", str(small)) for arg in argv)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode not in (98, 99), f"the small disk could not be set up: {done.stderr}"
    return done
