"""Reading the policy at the edge: a file given with --policy, or the shipped default."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from consumers.errors import ConfigurationError
from lifecycle.errors import PolicyError
from lifecycle.policy import Policy, parse_policy

DEFAULT_POLICY = files("lifecycle").joinpath("policy.toml")
# The shipped policy is 5 KB; a megabyte is no policy, and is not read whole.
_MAX_BYTES = 1024 * 1024


def load_policy(path: Path | None) -> Policy:
    """The policy in `path`, or the default one; a clear error if it cannot be used."""
    if path is None:
        return parse_policy(DEFAULT_POLICY.read_text(encoding="utf-8"), "default policy")
    try:
        with path.open("rb") as file:
            data = file.read(_MAX_BYTES + 1)
    except OSError as error:
        raise ConfigurationError(f"cannot read the policy file {path}: {error.strerror}") from None
    if len(data) > _MAX_BYTES:
        raise ConfigurationError(f"{path}: larger than {_MAX_BYTES:,} bytes, which no policy needs: is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        msg = f"{path}: not UTF-8 text (byte {error.start}): save the policy file as UTF-8"
        raise ConfigurationError(msg) from None
    try:
        return parse_policy(text, str(path))
    except PolicyError as error:
        raise ConfigurationError(str(error)) from None
