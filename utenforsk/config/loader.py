"""Safe YAML loading with composition, and pydantic errors turned into one clear line.

Composition: a file may say ``base: other.yaml`` (deep-merged under this file's keys, so a
scenario is a small diff) and ``include: [a.yaml, b.yaml]`` (merged in order, before this file's
own keys). Mappings merge key by key; anything else (numbers, lists, parameters) is replaced
whole. A key set to ``null`` in an override deletes it. Paths are relative to the file naming them.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from utenforsk.errors import ConfigError

PARAM_KEYS = {"value", "range", "source"}


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML (the fast C parser where available) that rejects duplicate keys.

    A key written twice in one mapping would otherwise be silently overwritten by the second.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: the safe constructor reports it below
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (each key may appear once in a mapping)",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml_mapping(path: str | Path) -> dict:
    """Read one YAML file that must hold a mapping; every failure is a ConfigError."""
    path = Path(path)
    shown = str(path)
    if not path.exists():
        raise ConfigError("file not found", file=shown, allowed="an existing YAML file")
    if path.is_dir():
        raise ConfigError("is a directory, expected a YAML file", file=shown,
                          allowed="a YAML file, e.g. configs/norway/baseline.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file ({exc.__class__.__name__}: {exc})", file=shown,
                          allowed="a readable UTF-8 text file") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(exc, text), file=shown) from None
    if data is None:
        raise ConfigError("file is empty", file=shown, allowed="a YAML mapping of config keys")
    if not isinstance(data, dict):
        raise ConfigError(f"top level is a {type(data).__name__}, expected a mapping", file=shown,
                          allowed="a YAML mapping of config keys")
    return data


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    def at(mark) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    out = f"YAML syntax error at {at(mark)}: {problem}" if mark else f"YAML syntax error: {problem}"
    lines = text.splitlines()
    if mark is not None and mark.line < len(lines) and lines[mark.line][mark.column:mark.column + 1] == "\t":
        out += " (a tab; YAML indents with spaces)"
    context, cmark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and cmark is not None and (mark is None or cmark.line != mark.line):
        out += f" ({context} that starts at {at(cmark)})"
    return out


def _merge(base: Any, over: Any) -> Any:
    """Deep-merge ``over`` onto ``base`` (mappings key by key; anything else replaced whole)."""
    if isinstance(base, dict) and isinstance(over, dict) and not PARAM_KEYS & set(over):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = _merge(base.get(k), v)
        return out
    return over


def compose(path: str | Path, origin: dict | None = None, _stack: tuple = (),
            _named_by: str | None = None) -> dict:
    """Load ``path`` with its ``base:`` and ``include:`` files resolved.

    ``origin`` (if given) is filled with key path (a tuple of strings) -> the file that last set
    that key, for every mapping and value, so an error can name the file where the bad key is.
    """
    path = Path(path)
    origin = {} if origin is None else origin
    if path.resolve() in _stack:
        raise ConfigError(f"circular base/include ({_named_by})", file=str(path),
                          allowed="files that do not base or include themselves")
    if _named_by is not None and not path.exists():
        raise ConfigError(f"file not found ({_named_by})", file=str(path),
                          allowed="a path relative to the file that names it, or an absolute path")
    raw = read_yaml_mapping(path)
    stack = _stack + (path.resolve(),)
    merged: dict = {}
    base = raw.pop("base", None)
    includes = raw.pop("include", [])
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError("`base` must be a file path", file=str(path), key="base", value=base,
                              allowed="one file path (string)")
        merged = compose(path.parent / base, origin, stack, f"named by `base:` in {path}")
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError("`include` must be a list of file paths", file=str(path), key="include",
                          value=includes, allowed="a list of file paths (strings)")
    for inc in includes:
        merged = _merge(merged, compose(path.parent / inc, origin, stack, f"named by `include:` in {path}"))
    merged = _merge(merged, raw)
    # this file's keys win over its base and includes, which were recorded before
    _record(raw, (), str(path), origin)
    return merged


def _record(data: Any, path: tuple, file: str, origin: dict) -> None:
    """Note ``file`` as the origin of every key path in ``data`` (mappings and their values)."""
    if path:
        origin[path] = file
    if isinstance(data, dict) and not PARAM_KEYS & set(data):
        for k, v in data.items():
            _record(v, path + (str(k),), file, origin)


def _file_for(loc: tuple, origin: dict, default: str) -> str:
    """The file that set ``loc`` (or its nearest parent that some file set)."""
    loc = tuple(str(p) for p in loc)
    for n in range(len(loc), 0, -1):
        if loc[:n] in origin:
            return origin[loc[:n]]
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
        if isinstance(data, dict) and part not in data:
            part = next((k for k in data if str(k) == str(part)), part)
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


_ALLOWED_IN_MSG = re.compile(r"(?:\s*\(allowed: (.*)\)|; (?:allowed|known): (.*))$")


def validate(model_cls: type[BaseModel], data: dict, file: str, origin: dict | None = None):
    """Validate ``data``; the first problem becomes one ConfigError with file, key, value, allowed."""
    origin = origin or {}
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        if first["type"] == "missing":  # a misspelt key is missing and unknown: say "unknown", it helps more
            first = next((e for e in errors if e["type"] == "extra_forbidden"
                          and tuple(e["loc"][:-1]) == tuple(first["loc"][:-1])), first)
        raise _config_error(model_cls, first, data, file, origin) from None


def _config_error(model_cls: type[BaseModel], err: dict, data: dict, file: str, origin: dict) -> ConfigError:
    loc, node = _resolve(model_cls, err["loc"])
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    allowed = None
    if msg.startswith("[") and "] " in msg:  # cross-reference problem: "[key.path] message"
        extra, msg = msg[1:].split("] ", 1)
        loc, node = _resolve(model_cls, tuple(err["loc"]) + tuple(_split_key(extra)))
        value = _value_at(data, loc)
    if "[key]" in err["loc"]:  # a mapping key of the wrong type, e.g. an age that is not a number
        msg = f"bad key: {msg}"
        value = loc[-1] if loc else value
    if kind == "extra_forbidden":
        msg, value = f"unknown key {str(loc[-1])!r}", None
        parent = _resolve(model_cls, err["loc"][:-1])[1]
        allowed = _allowed_keys(parent)
        if _is_model(parent):
            names = [f.alias or n for n, f in parent.model_fields.items()]
            close = difflib.get_close_matches(str(loc[-1]), names, 1)
            msg += f" (did you mean {close[0]!r}?)" if close else ""
    elif kind == "missing":
        msg, value = f"missing required key {str(loc[-1])!r}", None
        allowed = _allowed_keys(_resolve(model_cls, err["loc"][:-1])[1])
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        disc = str(err.get("ctx", {}).get("discriminator", "kind")).strip("'")
        tags = node[1] if isinstance(node, tuple) else None
        allowed = ", ".join(tags) if tags else err.get("ctx", {}).get("expected_tags")
        loc = loc + (disc,)
        if kind == "union_tag_not_found":
            msg, value = f"missing required key {disc!r} (it says which kind of entry this is)", None
        else:
            msg, value = f"unknown {disc}", err.get("ctx", {}).get("tag", value)
    elif kind in ("model_type", "model_attributes_type", "dict_type") and node is not None:
        msg, allowed = "expected a mapping", _allowed_keys(node)
        allowed = f"a mapping with keys {allowed}" if allowed else None
    elif kind == "literal_error":
        msg, allowed = "not one of the allowed values", err.get("ctx", {}).get("expected")
    found = _ALLOWED_IN_MSG.search(msg)
    if found and allowed is None:
        allowed, msg = found.group(1) or found.group(2), msg[:found.start()]
    if isinstance(value, dict) and (PARAM_KEYS & set(value) or len(repr(value)) > 80):
        value = None  # a parameter or a big mapping: the message says what is wrong with it
    elif isinstance(value, list) and len(repr(value)) > 80:
        value = None
    elif value is not None and not isinstance(value, (dict, list)) and repr(value) in msg:
        value = None  # already named in the message
    return ConfigError(msg, file=_file_for(loc, origin, file), key=_key_path(loc) or None,
                       value=value, allowed=allowed)


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


# ---- walking the schema along an error location ---------------------------------------------

def _unwrap(ann: Any, disc: str | None = None):
    """Strip ``Annotated`` and ``X | None``; a discriminated union becomes ``(union, {tag: model})``."""
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            args = typing.get_args(ann)
            found = [m.discriminator for m in args[1:] if isinstance(getattr(m, "discriminator", None), str)]
            disc = found[0] if found else disc
            ann = args[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(members) == 1:
                ann = members[0]
                continue
            if disc is None:
                return ann
            tags: dict = {}
            for m in members:
                m = _unwrap(m)
                field = m.model_fields.get(disc) if _is_model(m) else None
                for tag in typing.get_args(field.annotation) if field else ():
                    tags[str(tag)] = m
            return (ann, tags)
        else:
            return ann


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _resolve(model_cls: type[BaseModel], loc: tuple) -> tuple[tuple, Any]:
    """Follow ``loc`` (a pydantic error location) through the schema.

    Returns the location as the user wrote it (without union tags and ``[key]`` markers; list
    positions as ints, mapping keys as strings) and the type found there (a model class, a
    ``(union, {tag: model})`` pair, another type, or None when the walk got lost).
    """
    node: Any = model_cls
    out: list = []
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(node, tuple):  # discriminated union: pydantic puts the tag in the location
            union, tags = node
            if str(part) in tags:
                node = tags[str(part)]
                continue
            node = None
        if _is_model(node):
            field = next((f for n, f in node.model_fields.items() if part in (n, f.alias)), None)
            out.append(str(part))
            disc = field.discriminator if field and isinstance(field.discriminator, str) else None
            node = _unwrap(field.annotation, disc) if field else None
            continue
        origin, args = typing.get_origin(node), typing.get_args(node)
        if origin is dict and len(args) == 2:
            out.append(str(part))
            node = _unwrap(args[1])
        elif origin in (list, tuple) and args and isinstance(part, int):
            out.append(part)
            one = origin is list or (len(args) == 2 and args[1] is Ellipsis)
            node = _unwrap(args[0] if one else args[part]) if one or part < len(args) else None
        else:
            out.append(part if isinstance(part, int) else str(part))
            node = None
    return tuple(out), node


def _allowed_keys(node: Any) -> str | None:
    """The keys a mapping of type ``node`` accepts (for an unknown-key message)."""
    if isinstance(node, tuple):  # a discriminated union whose kind is not known yet
        union, tags = node
        return f"kind ({' or '.join(tags)}) and the keys of that kind"
    if _is_model(node):
        return ", ".join(f.alias or n for n, f in node.model_fields.items())
    return None


def _child(node: Any, part) -> tuple[bool, Any]:
    """(found, key) for ``part`` in a mapping (keys may be numbers: ``3`` matches ``3.0``) or list."""
    if isinstance(node, list):
        return (isinstance(part, int) and 0 <= part < len(node)), part
    if not isinstance(node, dict):
        return False, part
    if part in node:
        return True, part
    for k in node:
        if str(k) == str(part):
            return True, k
        try:
            if float(k) == float(part):
                return True, k
        except (TypeError, ValueError):
            pass
    return False, part
    for k in node:
        if isinstance(k, (int, float)) and not isinstance(k, bool):
            try:
                if float(k) == float(part):
                    return k
            except ValueError:
                pass
    return part


def node_at(data, dotted: str):
    """The value at a dotted key path in nested mappings (``a.b.c``), or None if there is none.
    A part may name a number key (``traits.mental_health.onset.age_profile.12``)."""
    node = data
    for part in dotted.split("."):
        node = node.get(_child(node, part)[1]) if isinstance(node, dict) else None
    return node


def config_hash(data: dict) -> str:
    """Stable hash of a composed, validated config (what made a result)."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def load_model_config(path: str | Path):
    """Compose and validate a model config file; returns a :class:`ModelConfig`."""
    from utenforsk.config.schema import ModelConfig

    origin: dict = {}
    data = compose(path, origin)
    _read_series(data, origin, str(path))
    return validate(ModelConfig, data, str(path), origin)


SERIES_COLUMNS = ("year", "alternative", "births", "immigrations")


def _read_series(data: dict, origin: dict, default: str) -> None:
    """Fill ``population.series.rows`` from the CSV its ``file`` names (relative to that YAML)."""
    import csv

    pop = data.get("population")
    series = pop.get("series") if isinstance(pop, dict) else None
    if not isinstance(series, dict) or "file" not in series or "rows" in series:
        return
    key = "population.series.file"
    named_in = _file_for(("population", "series", "file"), origin, default)
    name = series["file"]
    if not isinstance(name, str):
        raise ConfigError("must be a file path", file=named_in, key=key, value=name,
                          allowed="a CSV path relative to the YAML file naming it")
    path = Path(named_in).parent / name
    if not path.is_file():
        raise ConfigError("file not found", file=named_in, key=key, value=name,
                          allowed=f"an existing CSV relative to {Path(named_in).parent}")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in SERIES_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"missing columns {missing}", file=str(path), key=key,
                                  value=reader.fieldnames, allowed=", ".join(SERIES_COLUMNS))
            rows = []
            for n, r in enumerate(reader, start=2):
                try:
                    row = {"year": int(r["year"]), "alternative": r["alternative"],
                           "births": float(r["births"]), "immigrations": float(r["immigrations"])}
                    if r.get("birth_share") not in (None, ""):
                        row["birth_share"] = float(r["birth_share"])
                    rows.append(row)
                except (TypeError, ValueError):
                    raise ConfigError(f"line {n}: year, births, immigrations (and birth_share) must be numbers",
                                      file=str(path), key=key, value={c: r.get(c) for c in SERIES_COLUMNS},
                                      allowed="year (integer), births and immigrations (>= 0)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file ({exc.__class__.__name__})", file=str(path), key=key) from None
    series["rows"] = rows
