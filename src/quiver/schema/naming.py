"""Names: snake_case database names to GraphQL's PascalCase types and camelCase fields."""

from __future__ import annotations

import re

_IRREGULAR = {"people": "person", "children": "child", "men": "man", "women": "woman", "data": "data"}
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")


def singular(word: str) -> str:
    """English singular of a table name's last word (tables are usually plural)."""
    lower = word.lower()
    if lower in _IRREGULAR:
        return _IRREGULAR[lower]
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh")):
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return word[: -len(suffix)] + replacement
    if lower.endswith("ss") or lower.endswith("us") or lower.endswith("is"):
        return word
    if lower.endswith("s") and len(lower) > 1:
        return word[:-1]
    return word


def _words(name: str) -> list[str]:
    cleaned = re.sub(r"[^0-9A-Za-z]+", "_", name)
    parts = [p for p in re.split(r"_|(?<=[a-z0-9])(?=[A-Z])", cleaned) if p]
    return parts or ["x"]


def pascal(name: str) -> str:
    return safe_name("".join(w[:1].upper() + w[1:].lower() for w in _words(name)))


def camel(name: str) -> str:
    words = _words(name)
    first = words[0].lower()
    return safe_name(first + "".join(w[:1].upper() + w[1:].lower() for w in words[1:]))


def type_name(table: str) -> str:
    words = _words(table)
    words[-1] = singular(words[-1])
    return pascal("_".join(words))


def safe_name(name: str) -> str:
    """A valid GraphQL name: digits cannot lead, and ``__`` is reserved."""
    if not name or name[0].isdigit():
        name = "_" + name
    if name.startswith("__"):
        name = "x" + name
    return name if _NAME.match(name) else re.sub(r"[^_0-9A-Za-z]", "_", name)


def enum_value_name(label: str) -> str:
    """GraphQL name for an enum label; labels that are valid names are kept as they are."""
    if _NAME.match(label) and label not in {"true", "false", "null"} and not label.startswith("__"):
        return label
    cleaned = re.sub(r"[^_0-9A-Za-z]", "_", label)
    if not cleaned or cleaned[0].isdigit() or cleaned in {"true", "false", "null"}:
        cleaned = "_" + cleaned
    return cleaned
