"""Safe YAML loading with composition, and pydantic errors turned into one clear line.

Composition: a file may say ``base: other.yaml`` (deep-merged under this file's keys, so a
scenario is a small diff) and ``include: [a.yaml, b.yaml]`` (merged in order, before this file's
own keys). Mappings merge key by key; anything else (numbers, lists, parameters) is replaced
whole. A key set to ``null`` in an override deletes it. Paths are relative to the file naming them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from utenforsk.errors import ConfigError

PARAM_KEYS = {"value", "range", "source"}


def read_yaml_mapping(path: str | Path) -> dict:
    """Read one YAML file that must hold a mapping; every failure is a ConfigError."""
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise ConfigError("file not found", file=shown)
    if path.is_dir():
        raise ConfigError("is a directory, expected a YAML file", file=shown)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file ({exc.__class__.__name__}: {exc})", file=shown) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"YAML syntax error at {where}{problem}", file=shown) from None
    if data is None:
        raise ConfigError("file is empty", file=shown, allowed="a YAML mapping of config keys")
    if not isinstance(data, dict):
        raise ConfigError(f"top level is a {type(data).__name__}, expected a mapping", file=shown,
                          allowed="a YAML mapping of config keys")
    return data


def _merge(base: Any, over: Any, origin: dict, over_file: str, path: tuple = ()) -> Any:
    """Deep-merge ``over`` onto ``base``; records which file set each key path in ``origin``."""
    if isinstance(base, dict) and isinstance(over, dict) and not PARAM_KEYS & set(over):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(base.get(k), v, origin, over_file, path + (str(k),))
        return out
    origin[path] = over_file
    return over


def compose(path: str | Path, origin: dict | None = None, _stack: tuple = ()) -> dict:
    """Load ``path`` with its ``base:`` and ``include:`` files resolved."""
    path = Path(path)
    origin = {} if origin is None else origin
    if path.resolve() in _stack:
        raise ConfigError("circular base/include", file=str(path))
    raw = read_yaml_mapping(path)
    stack = _stack + (path.resolve(),)
    merged: dict = {}
    base = raw.pop("base", None)
    includes = raw.pop("include", [])
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError("`base` must be a file path", file=str(path), key="base", value=base)
        merged = compose(path.parent / base, origin, stack)
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("`include` must be a list of file paths", file=str(path), key="include",
                          value=includes)
    for inc in includes:
        merged = _merge(merged, compose(path.parent / inc, origin, stack), origin, str(path.parent / inc))
    origin_here: dict = {}
    merged = _merge(merged, raw, origin_here, str(path))
    # keys set by this file win; record them without erasing deeper origins
    for k, v in origin_here.items():
        origin[k] = v
    _record_leaves(raw, (), str(path), origin)
    return merged


def _record_leaves(data: Any, path: tuple, file: str, origin: dict) -> None:
    if isinstance(data, dict) and not PARAM_KEYS & set(data):
        for k, v in data.items():
            _record_leaves(v, path + (str(k),), file, origin)
    else:
        origin[path] = file


def _file_for(loc: tuple, origin: dict, default: str) -> str:
    for n in range(len(loc), -1, -1):
        if tuple(loc[:n]) in origin:
            return origin[tuple(loc[:n])]
    return default


def _key_path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _value_at(data: Any, loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def validate(model_cls: type[BaseModel], data: dict, file: str, origin: dict | None = None):
    """Validate ``data``; the first problem becomes a ConfigError with file, key, value."""
    origin = origin or {}
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in
                                                   ("ContinuousTrait", "BinaryTrait", "continuous", "binary")))
        msg = err["msg"].removeprefix("Value error, ")
        if msg.startswith("[") and "] " in msg:  # cross-reference problem: "[key.path] message"
            extra, msg = msg[1:].split("] ", 1)
            loc = loc + tuple(_split_key(extra))
        value = _value_at(data, loc)
        if err["type"] == "extra_forbidden":
            parent = _value_at(data, loc[:-1])
            allowed = _allowed_keys(model_cls, loc[:-1], data)
            msg = f"unknown key {loc[-1]!r}"
            value = None
            raise ConfigError(msg, file=_file_for(loc, origin, file), key=_key_path(loc),
                              allowed=allowed) from None
        if err["type"] == "missing":
            value = None
        if isinstance(value, (dict, list)) and len(repr(value)) > 80:
            value = None
        raise ConfigError(msg, file=_file_for(loc, origin, file), key=_key_path(loc),
                          value=value) from None


def _split_key(key: str) -> list:
    out: list = []
    for part in key.split("."):
        while "[" in part:
            head, rest = part.split("[", 1)
            if head:
                out.append(head)
            idx, part = rest.split("]", 1)
            out.append(int(idx))
        if part:
            out.append(part)
    return out


def _allowed_keys(model_cls: type[BaseModel], loc: tuple, data: dict) -> str | None:
    """The keys a mapping at ``loc`` accepts, found by walking the schema (best effort)."""
    import typing

    cls: Any = model_cls
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            field = next((f for n, f in cls.model_fields.items() if part in (n, f.alias)), None)
            cls = _model_in(field.annotation) if field else None
        else:
            cls = None
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return ", ".join(f.alias or n for n, f in cls.model_fields.items())
    return None


def _model_in(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def config_hash(data: dict) -> str:
    """Stable hash of a composed, validated config (what made a result)."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_model_config(path: str | Path):
    """Compose and validate a model config file; returns a :class:`ModelConfig`."""
    from utenforsk.config.schema import ModelConfig

    origin: dict = {}
    data = compose(path, origin)
    return validate(ModelConfig, data, str(path), origin)
