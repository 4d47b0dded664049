"""Loading any run config (`rlaif train`'s RunConfig, `rlaif dpo`'s DPORunConfig) from YAML:

    ConfigSection                                 the base of every config section: unknown keys
                                                  and non-finite numbers (.inf, .nan) refused
    read_config_mapping(path | data, overrides)   the YAML file (or a copy of `data`) as a dict,
                                                  `a.b=c` overrides applied; a key given twice
                                                  in the file is refused (rlaif.io.read_yaml)
    validate_config(data, Model, source)          unknown keys by dotted name, then pydantic
                                                  validation with every error on its own line

Errors name the file (or "<config>"), the dotted key, the rule, the value and the fix.
"""

from __future__ import annotations

import copy
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from rlaif.io import read_yaml
from rlaif.overrides import apply_override

ModelT = TypeVar("ModelT", bound=BaseModel)

# What a rejected infinity or NaN is told: no setting means "unbounded" or "undefined".
_NOT_FINITE = ("must be a finite number: .inf / .nan (or 'inf' / 'nan') would turn every step's "
               "numbers into inf or NaN; give an ordinary number")
# Union members pydantic names in an error's location (`test_size: float | int` -> test_size.float).
_UNION_MEMBER = re.compile(r"^(float|int|str|bool|none|list\[.*\]|dict\[.*\]|function-\w+\[.*\])$")


class ConfigSection(BaseModel):
    """The base of every run-config section: unknown keys are refused, assignments are
    validated, and no float or int setting accepts infinity or NaN."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def read_config_mapping(path: str | Path | None, overrides: list[str] | None,
                        data: dict[str, Any] | None, *, what: str = "run config",
                        example: str = "see configs/ for examples") -> tuple[dict[str, Any], str]:
    """(the config as a dict, overrides applied; its source for error messages).

    `data` is deep-copied: overrides and path fixes never reach into the caller's dict."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{what} {path} does not exist; {example}")
        loaded = read_yaml(path, what=what) or {}
        source = str(path)
    else:
        loaded, source = copy.deepcopy(data or {}), "<config>"
    if not isinstance(loaded, dict):
        raise ValueError(  # noqa: TRY004  (bad user input: the CLI reports ValueError)
            f"{source}: a {what} must be a mapping, got {type(loaded).__name__}")
    for override in overrides or []:
        apply_override(loaded, override)
    if overrides:
        source += " + overrides " + " ".join(overrides)
    return loaded, source


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation like `X`, `X | None`, `Optional[X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        models = [a for a in typing.get_args(annotation)
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) == 1 and not any(typing.get_origin(a) is dict or a is dict
                                        for a in typing.get_args(annotation)):
            return models[0]
    return None


def check_keys(data: Any, model: type[BaseModel], prefix: str = "") -> None:
    """Fail on the first unknown key, naming it (dotted) and listing the valid keys there."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key not in model.model_fields:
            valid = ", ".join(model.model_fields)
            where = f"in '{prefix[:-1]}'" if prefix else "at the top level"
            raise ValueError(f"unknown config key '{name}' {where}; valid keys: {valid}")
        sub = _section_model(model.model_fields[key].annotation)
        if sub is not None:
            check_keys(value, sub, f"{name}.")


def yaml_value_fix(data: dict[str, Any]) -> None:
    """PyYAML reads `1e-5` (no dot) as a string; turn such strings back into floats (in place)."""
    for key, value in list(data.items()):
        if isinstance(value, dict):
            yaml_value_fix(value)
        elif isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
            data[key] = float(value)


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def validate_config(data: dict[str, Any], model: type[ModelT], source: str = "<dict>", *,
                    what: str = "run config") -> ModelT:
    """`model` from `data`: unknown keys and rule violations raise ValueError naming `source`
    and each offending dotted key with its value."""
    if not isinstance(data, dict):
        raise ValueError(  # noqa: TRY004  (bad user input: the CLI reports ValueError)
            f"{source}: a {what} must be a mapping, got {type(data).__name__}")
    yaml_value_fix(data)
    check_keys(data, model)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}  # dotted key -> its lines
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not _UNION_MEMBER.match(str(p)))
            msg = _NOT_FINITE if err["type"] == "finite_number" else err["msg"].removeprefix("Value error, ")
            line = f"  {loc or '(config)'}: {msg} (got {_short(err.get('input'))})"
            if err["type"] == "finite_number":  # what a union's other members say adds nothing
                errors[loc] = [line]
            elif _NOT_FINITE not in "".join(errors.get(loc, [])) and line not in errors.get(loc, []):
                errors.setdefault(loc, []).append(line)
        lines = [line for key_lines in errors.values() for line in key_lines]
        raise ValueError(f"{source}: invalid {what}\n" + "\n".join(lines)) from None


def config_relative_path(path: str | Path | None, section: Any, key: str, *,
                         need_file: bool = True) -> None:
    """`section[key]`, a path relative to the config file at `path`, made absolute (in place)
    when it names something there, so a run started from another folder finds it.

    need_file: only a file beside the config counts (judge specs); False: any path beside the
    config, used only when the value names nothing from the current folder (label files)."""
    if path is None or not isinstance(section, dict) or not isinstance(section.get(key), str):
        return
    value = Path(section[key])
    candidate = Path(path).parent / value
    found = candidate.is_file() if need_file else candidate.exists()
    if not value.is_absolute() and found and (need_file or not value.exists()):
        section[key] = str(candidate.resolve())
