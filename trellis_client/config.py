"""Where and who: the server URL and API token, from arguments, the environment
(``TRELLIS_URL``, ``TRELLIS_TOKEN``, ``TRELLIS_PROFILE``) or a saved profile.

Profiles live in ``$XDG_CONFIG_HOME/trellis/config.json`` (``~/.config/trellis/`` without
it), readable by their owner only (0600: the file holds tokens). The first profile saved is
the default. Precedence, first found wins: explicit ``url``/``token``; the profile named by
``profile`` or ``TRELLIS_PROFILE``; ``TRELLIS_URL``/``TRELLIS_TOKEN``; the default profile.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TrellisError


class ConfigError(TrellisError):
    """No server URL, an unknown profile, or an unreadable config file."""


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trellis" / "config.json"


def load(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The config file's content: ``{"default": name, "profiles": {name: {url, token}}}``."""
    path = config_path(environ)
    if not path.exists():
        return {"default": None, "profiles": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ConfigError(f"{path} is not a Trellis config file (no 'profiles' object)")
    return data


def save_profile(
    name: str,
    url: str,
    token: str | None,
    *,
    make_default: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """Save (or replace) the profile ``name``; the first one saved becomes the default.
    The file is written whole, then renamed, with mode 0600 from its creation."""
    data = load(environ)
    data["profiles"][name] = {"url": url.rstrip("/"), "token": token}
    if make_default or not data.get("default"):
        data["default"] = name
    return _write(data, environ)


def remove_profile(name: str, environ: Mapping[str, str] = os.environ) -> Path:
    data = load(environ)
    if data["profiles"].pop(name, None) is None:
        raise ConfigError(f"no profile named {name!r} in {config_path(environ)}")
    if data.get("default") == name:
        data["default"] = next(iter(data["profiles"]), None)
    return _write(data, environ)


def _write(data: dict[str, Any], environ: Mapping[str, str]) -> Path:
    path = config_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)  # an older temporary file kept its mode through O_CREAT
    os.replace(temporary, path)
    return path


def resolve(
    url: str | None = None,
    token: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Target:
    """The server and token to use (see the module's precedence); ConfigError without a URL."""
    name = profile or environ.get("TRELLIS_PROFILE")
    data = load(environ) if (name or not (url and token)) else {"profiles": {}}
    profiles = data["profiles"]
    if name and name not in profiles:
        raise ConfigError(f"no profile named {name!r} in {config_path(environ)}")
    layers: list[Mapping[str, Any]] = [{"url": url, "token": token}]
    if name:
        layers.append(profiles[name])
    else:
        layers.append({"url": environ.get("TRELLIS_URL"), "token": environ.get("TRELLIS_TOKEN")})
        layers.append(profiles.get(data.get("default") or "", {}))
    chosen_url = next((layer["url"] for layer in layers if layer.get("url")), None)
    chosen_token = next((layer["token"] for layer in layers if layer.get("token")), None)
    if not chosen_url:
        raise ConfigError(
            "no Trellis server URL: set TRELLIS_URL, pass --url, or save a profile "
            "(trellis profile save NAME --url URL --token TOKEN)"
        )
    return Target(chosen_url.rstrip("/"), chosen_token)
