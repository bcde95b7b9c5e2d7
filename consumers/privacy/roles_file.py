"""Reading the roles at the edge: a file given with --roles (env LIFECYCLE_ROLES), or the
shipped default (`consumers/privacy/roles.toml`: an analyst and a privacy officer)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Literal

import msgspec

from consumers.errors import ConfigurationError
from projections.reading.roles import Grant, Role

DEFAULT_ROLES = files("consumers.privacy").joinpath("roles.toml")
_NAME = "^[a-z][a-z0-9_-]{0,63}$"


class _Grant(msgspec.Struct, forbid_unknown_fields=True):
    sources: list[str] = []
    programmes: list[str] = []
    stages: list[str] = []
    value_bands: list[str] = []


class _Role(msgspec.Struct, forbid_unknown_fields=True):
    personal: Literal["masked", "clear"] = "masked"
    grant: _Grant | None = None


class _Roles(msgspec.Struct, forbid_unknown_fields=True):
    default: str
    roles: dict[str, _Role]


@dataclass(frozen=True)
class Roles:
    default: str
    roles: dict[str, Role]

    def role(self, name: str | None) -> Role:
        """The role named (the default if None); a clear error for one not defined."""
        name = name or self.default
        if name not in self.roles:
            raise ConfigurationError(f"no role {name!r} in the roles file: the roles are {', '.join(sorted(self.roles))}")
        return self.roles[name]

    def partners(self) -> list[Role]:
        """The roles with a grant: each reads a snapshot of its own."""
        return [role for role in self.roles.values() if role.grant is not None]


def load_roles(path: Path | None) -> Roles:
    where = str(path) if path is not None else "the shipped roles file"
    try:
        text = path.read_text(encoding="utf-8") if path is not None else DEFAULT_ROLES.read_text(encoding="utf-8")
        parsed = msgspec.convert(tomllib.loads(text), _Roles)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read the roles file {where}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{where}: not TOML: {error}") from None
    except msgspec.ValidationError as error:
        raise ConfigurationError(f"{where}: {error}: see the README's Privacy section for the keys") from None
    for name, role in parsed.roles.items():
        if not re.fullmatch(_NAME, name):
            raise ConfigurationError(f"{where}: role name {name!r} must be lower-case letters, digits, - or _")
        if role.grant is not None and role.personal == "clear":
            raise ConfigurationError(f"{where}: role {name!r} has a grant and personal = \"clear\": a partner "
                                     "never reads personal data in clear")
        if role.grant is not None and not any(msgspec.structs.asdict(role.grant).values()):
            raise ConfigurationError(f"{where}: role {name!r} has an empty grant: name what it grants "
                                     "(sources, programmes, stages or value_bands)")
    if parsed.default not in parsed.roles:
        raise ConfigurationError(f"{where}: default = {parsed.default!r} is not one of its roles")
    roles = {name: Role(name, role.personal, None if role.grant is None else Grant(
        **{kind: tuple(values) for kind, values in msgspec.structs.asdict(role.grant).items()}))
        for name, role in parsed.roles.items()}
    return Roles(parsed.default, roles)
