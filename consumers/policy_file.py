"""Reading the policy at the edge: a file given with --policy, or the shipped default."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from consumers.errors import ConfigurationError
from lifecycle.errors import PolicyError
from lifecycle.policy import Policy, parse_policy

DEFAULT_POLICY = files("lifecycle").joinpath("policy.toml")


def load_policy(path: Path | None) -> Policy:
    """The policy in `path`, or the default one; a clear error if it cannot be used."""
    if path is None:
        return parse_policy(DEFAULT_POLICY.read_text(encoding="utf-8"), "default policy")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"cannot read the policy file {path}: {error.strerror}") from None
    try:
        return parse_policy(text, str(path))
    except PolicyError as error:
        raise ConfigurationError(str(error)) from None
