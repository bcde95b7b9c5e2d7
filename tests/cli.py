"""Running the `lifecycle` command in-process against a test's settings."""

from __future__ import annotations

from consumers.cli import main
from consumers.settings import Settings


def lifecycle(settings: Settings, *args: str) -> int:
    """`lifecycle ARGS --home ... [--kafka ...]`, returning the exit status."""
    flags = ["--home", str(settings.home)]
    if settings.kafka:
        flags += ["--kafka", settings.kafka]
    return main([*args, *flags])
