"""Safe reading of the YAML and JSON files users write (protocols, batch manifests).

Every reader here has bounded cost and one-line errors:

- the file must be a regular file of at most :data:`MAX_TEXT_BYTES` (a FIFO or
  ``/dev/zero`` is refused before reading, and at most that many bytes are read);
- nesting deeper than :data:`MAX_DEPTH` is refused before any recursive step runs, so
  no ``RecursionError`` can escape;
- YAML anchors and aliases are allowed (merge keys ``<<`` rely on them), but the
  document they expand to may hold at most :data:`MAX_EXPANDED_NODES` values: an alias
  bomb ("billion laughs", 700 bytes -> 1 GB) is refused from its node graph, before
  anything is built; recursive aliases are refused;
- a key given twice in one mapping is refused, in YAML and in JSON alike; keys must be
  strings (so unhashable or numeric keys get a clean message);
- YAML numbers follow what users type (YAML 1.2 core schema): ``1e9`` and ``1.0e9`` are
  floats (PyYAML's YAML 1.1 resolver would read them as strings);
- integers longer than Python's digit limit, and text that is not UTF-8, are refused.

Every error is a :class:`~fusplan.errors.FusplanInputError` whose message starts with
the file name (``<label>: not valid YAML (line 3: ...)``).
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import FusplanInputError, first_line

__all__ = [
    "MAX_TEXT_BYTES",
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "read_text_limited",
    "read_structured_file",
    "parse_yaml",
    "parse_json",
    "parse_yaml_value",
    "display_path",
]

#: Largest protocol or manifest file read, in bytes (the bundled protocols are ~2 kB).
MAX_TEXT_BYTES = 1024 * 1024
#: Deepest nesting of lists and mappings (a protocol needs 4).
MAX_DEPTH = 32
#: Largest number of values (scalars, lists, mappings) a document may expand to,
#: counting every use of an alias in full.
MAX_EXPANDED_NODES = 200_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.2 core schema floats plus YAML 1.1's forms (1_000.5, sexagesimal are not kept).
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|0o[0-7_]+)$")


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable one-line text: undecodable bytes and control characters escaped.

    File names on POSIX are bytes; Python keeps undecodable ones as lone surrogates,
    which cannot be written as UTF-8 (so JSON output or an error line would fail).
    """
    raw = os.fsencode(path)
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def read_text_limited(path: str | os.PathLike, *, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a UTF-8 text file of at most ``max_bytes``, refusing anything else in one line.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file is, for messages (``"protocol file"``).
    max_bytes : int
        Size cap; larger files are refused without being read.
    """
    path = Path(path)
    name = display_path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FusplanInputError(f"{name}: {what} not found") from None
    except OSError as error:
        raise FusplanInputError(f"{name}: cannot read {what} ({error.strerror or type(error).__name__})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise FusplanInputError(f"{name}: {what} is {kind}")
    if info.st_size > max_bytes:
        raise FusplanInputError(f"{name}: {what} is {info.st_size:,} bytes, more than the {max_bytes:,} allowed")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise FusplanInputError(f"{name}: cannot read {what} ({error.strerror or type(error).__name__})") from None
    if len(data) > max_bytes:
        raise FusplanInputError(f"{name}: {what} is more than the {max_bytes:,} bytes allowed")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FusplanInputError(f"{name}: {what} is not UTF-8 text (byte {error.start})") from None


def read_structured_file(path: str | os.PathLike, *, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Read a ``.json`` file with :func:`parse_json`, anything else with :func:`parse_yaml`."""
    path = Path(path)
    text = read_text_limited(path, what=what, max_bytes=max_bytes)
    if path.suffix.lower() == ".json":
        return parse_json(text, label=display_path(path))
    return parse_yaml(text, label=display_path(path))


# ------------------------------------------------------------------------------------ JSON


def _refuse_duplicates(label: str):
    def hook(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise FusplanInputError(f"{label}: key {key!r} given twice in one object")
            result[key] = value
        return result

    return hook


def _refuse_constant(label: str):
    def hook(name):
        raise FusplanInputError(f"{label}: {name} is not a JSON number (give a finite number)")

    return hook


def parse_json(text: str, *, label: str = "<json>") -> Any:
    """Parse JSON text with depth and size limits; duplicate keys are refused."""
    _check_bracket_depth(text, label)
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicates(label), parse_constant=_refuse_constant(label))
    except FusplanInputError:
        raise
    except json.JSONDecodeError as error:
        raise FusplanInputError(f"{label}: not valid JSON (line {error.lineno}: {error.msg})") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer beyond Python's digit limit
        raise FusplanInputError(f"{label}: not valid JSON ({_first_line(error)})") from None


def _check_bracket_depth(text: str, label: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH, by a linear scan outside strings."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise FusplanInputError(f"{label}: nested deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


# ------------------------------------------------------------------------------------ YAML


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers, refused duplicate keys and string-only keys."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:float",
                                                                          "tag:yaml.org,2002:int")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_SafeLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"key {_short(key)} is not a text key (line {line})"
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice (line {line})")
        seen.add(key)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(error: BaseException) -> str:
    if str(error).strip().startswith("Exceeds the limit"):
        return "a number has more digits than Python reads"
    return first_line(error)


def _check_events(text: str, label: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH from the event stream (the parser is iterative)."""
    depth = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise FusplanInputError(f"{label}: nested deeper than {MAX_DEPTH} levels (line {line})")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _expanded_size(root: yaml.Node, label: str) -> int:
    """Number of values the node graph expands to, counting each alias use in full.

    Memoised per node (aliases share nodes), iterative (no recursion), and refuses
    cycles, so the cost is linear in the file even when the expansion is exponential.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = min(1 + sum(sizes[id(c)] for c in children), MAX_EXPANDED_NODES + 1)
            continue
        if key in sizes:
            continue
        if key in on_path:
            line = node.start_mark.line + 1
            raise FusplanInputError(f"{label}: an alias refers to itself (recursive structure, line {line})")
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                line = child.start_mark.line + 1
                raise FusplanInputError(f"{label}: an alias refers to itself (recursive structure, line {line})")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parse_yaml(text: str, *, label: str = "<yaml>") -> Any:
    """Parse one YAML document safely (see the module docstring for the limits).

    Parameters
    ----------
    text : str
        The document.
    label : str
        Name used at the start of error messages (the file name).

    Raises
    ------
    FusplanInputError
        Invalid YAML, too deep, too large an expansion, duplicate or non-text keys.
    """
    try:
        _check_events(text, label)
        loader = _SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            size = _expanded_size(node, label)
            if size > MAX_EXPANDED_NODES:
                raise FusplanInputError(
                    f"{label}: aliases expand to more than {MAX_EXPANDED_NODES:,} values (alias bomb?)"
                )
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except FusplanInputError:
        raise
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or _first_line(error)
        raise FusplanInputError(f"{label}: not valid YAML ({where}{problem})") from None
    except (ValueError, OverflowError, RecursionError) as error:  # e.g. an over-long integer
        raise FusplanInputError(f"{label}: not valid YAML ({_first_line(error)})") from None


def parse_yaml_value(text: str, *, label: str = "value") -> Any:
    """Parse one command-line value (``key=value`` overrides, manifest cells) as YAML.

    Same rules as :func:`parse_yaml` (``1e9`` is a number, bounded size and depth).
    """
    if len(text) > MAX_TEXT_BYTES:
        raise FusplanInputError(f"{label}: value is longer than {MAX_TEXT_BYTES:,} characters")
    return parse_yaml(text, label=label)
