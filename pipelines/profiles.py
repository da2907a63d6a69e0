"""Runner profiles: Beam pipeline options and run-config overrides kept in a YAML file, merged into a run.

`cmtp run CONFIG --profile dataflow` reads configs/profiles/dataflow.yaml (shipped with the package; any
other path works too). Its `options` become Beam flags placed before the command line's, so a flag given
on the command line wins; its `config` is merged key by key over the run config before validation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cmtp.configs import PROFILES


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Profile:
    path: str
    args: list[str]  # Beam flags
    config: dict  # run-config overrides


def option_args(options: dict[str, Any]) -> list[str]:
    """Beam flags for an options mapping: `--key=value`; true booleans as `--key` (Beam's flags are
    store_true), false ones left out; lists as the flag repeated (`experiments`, `dataflow_service_options`)."""
    args = []
    for key, value in options.items():
        if isinstance(value, bool):
            args += [f"--{key}"] if value else []
        elif isinstance(value, list):
            args += [f"--{key}={item}" for item in value]
        elif value is not None:
            args.append(f"--{key}={value}")
    return args


def merged(base: Any, override: Any) -> Any:
    """`override` over `base`, mappings merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: merged(base.get(key), value) for key, value in override.items()}}
    return override


def load_profile(name: str) -> Profile:
    """A shipped profile by name (local, dataflow, flink, spark) or a profile file by path."""
    path = Path(name) if os.path.sep in name or name.endswith((".yaml", ".yml")) else PROFILES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.yaml")))
        raise ProfileError(f"--profile {name}: no such profile (shipped: {known}; or give a path)")
    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8-sig")) or {}
    except yaml.YAMLError as error:
        raise ProfileError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except UnicodeDecodeError as error:
        raise ProfileError(f"{path}: not UTF-8 text (byte {error.start}); save the profile as UTF-8") from None
    except OSError as error:
        raise ProfileError(f"{path}: cannot read the profile: {error.strerror}") from None
    unknown = sorted(set(raw) - {"options", "config"}) if isinstance(raw, dict) else ["(not a mapping)"]
    if unknown:
        raise ProfileError(f"{path}: unknown key {unknown[0]!r}; a profile has `options` (Beam flags) and `config`")
    options, config = raw.get("options") or {}, raw.get("config") or {}
    if not isinstance(options, dict) or not isinstance(config, dict):
        raise ProfileError(f"{path}: `options` and `config` must be mappings")
    return Profile(str(path), option_args(options), config)
