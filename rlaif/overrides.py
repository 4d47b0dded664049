"""Dotted `key=value` overrides, for run configs (`ppo.learning_rate=1e-5`) and judge specs
(`--set batch_size=8`): one parser, values read as YAML (`1e-3`, `true`, `[q, v]`, `null`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


def apply_override(data: dict[str, Any], override: str, *, flag: str = "override",
                   example: str = "ppo.learning_rate=1e-5", empty: Any = None) -> None:
    """Set `a.b.c=value` in a nested dict in place; an empty value becomes `empty`."""
    where = f"{flag} {override!r}"
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{where} is not key=value; write e.g. {example} (expected KEY=VALUE)")
    parts = key.strip().split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ValueError(
                f"{where}: '{'.'.join(parts[:i + 1])}' holds {child!r}, not a "
                "section, so it has no sub-keys"
            )
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else empty
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: the value is not valid YAML ({exc})") from None


def parse_overrides(items: Iterable[str], *, flag: str = "--set",
                    example: str = "--set batch_size=8") -> dict[str, Any]:
    """Turn ["a=1", "b.c=x"] into {"a": 1, "b": {"c": "x"}} (an empty value is "")."""
    out: dict[str, Any] = {}
    for item in items:
        apply_override(out, item, flag=flag, example=example, empty="")
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `extra` merged in, section by section."""
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged
