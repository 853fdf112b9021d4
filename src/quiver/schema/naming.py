"""Names: snake_case database names to GraphQL's PascalCase types and camelCase fields, made unique.

The derivation is lossy (``Order_Items`` and ``order_items`` both give ``OrderItem``), so the
second half holds the one rule that makes every generated name unique (docs/graphql.md, "Names").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

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


# -- unique names ------------------------------------------------------------------------------------------
# Type names the schema defines itself (GraphQL's and Quiver's scalars, their filters, the roots): no table
# or enum may take them.
_SCALAR_NAMES = ("Int", "Float", "String", "Boolean", "ID", "BigInt", "Decimal", "UUID", "DateTime",
                 "LocalDateTime", "Date", "Time", "Interval", "JSON", "Bytes")
RESERVED_TYPES = frozenset(
    {"Query", "Mutation", "Subscription", "OrderDirection", "SubscriptionFrom"}
    | {name + suffix for name in _SCALAR_NAMES for suffix in ("", "Filter")}
    | {"List" + name + "Filter" for name in _SCALAR_NAMES}
)
# Field names of every object type and `where` input besides the columns and relations.
RESERVED_FIELDS = frozenset({"_cursor", "and", "or", "not"})
# The parts of each table's names, prefixed with the GraphQL namespace they live in.
_ENTITY_TYPES = ("", "Where", "OrderBy", "Aggregate")
_WRITABLE_TYPES = ("Insert", "Set")


def numbered(name: str, n: int) -> str:
    """The n-th candidate for ``name``: ``name`` itself, then ``name2``, ``name3``..."""
    return name if n <= 1 else f"{name}{n}"


def one_field(type_name: str, list_field: str) -> str:
    """The root by-primary-key field: camelCase of the type, ``...ByPk`` where that is the list field."""
    name = camel(type_name)
    return name + "ByPk" if name == list_field else name


def mutation_fields(type_name: str, list_field: str) -> tuple[str, str, str, str]:
    """insert one, insert many, update, delete."""
    many = pascal(list_field)
    one = type_name if type_name != many else type_name + "One"
    return "insert" + one, "insert" + many, "update" + many, "delete" + many


def entity_claims(type_name: str, list_field: str, *, has_key: bool, writable: bool) -> frozenset[str]:
    """Every schema-wide name one table or view takes, as ``type:X``, ``query:x`` and ``mutation:x``."""
    types = [type_name + s for s in _ENTITY_TYPES + (_WRITABLE_TYPES if writable else ())]
    query = [list_field, list_field + "Aggregate"] + ([one_field(type_name, list_field)] if has_key else [])
    mutation = list(mutation_fields(type_name, list_field)) if writable else []
    return frozenset([f"type:{t}" for t in types] + [f"query:{q}" for q in query]
                     + [f"mutation:{m}" for m in mutation])


def enum_claims(name: str) -> frozenset[str]:
    return frozenset({f"type:{name}", f"type:{name}Filter", f"type:List{name}Filter"})


def numbered_claims(name: str, claims: Callable[[str], frozenset[str]] = lambda n: frozenset({n}),
                    ) -> Callable[[int], frozenset[str]]:
    """The claims of ``numbered(name, n)`` for each attempt n (one name, unless ``claims`` says more)."""
    def at(attempt: int) -> frozenset[str]:
        return claims(numbered(name, attempt))
    return at


def first_free(claims: Sequence[Callable[[int], frozenset[str]]], taken: Iterable[str] = ()) -> list[int]:
    """For each item the attempt (1, 2, ...) whose names it gets; ``claims[i](n)`` are item i's n-th names.

    The rule (docs/graphql.md, "Names"): an item whose first names clash with no other item's and with
    nothing in ``taken`` keeps them. The others, in the order given (the caller's priority), take their
    first attempt whose names are all still free.
    """
    first = [c(1) for c in claims]
    counts = Counter(name for names in first for name in names)
    used = set(taken)
    clear = [not (names & used) and all(counts[n] == 1 for n in names) for names in first]
    for names, ok in zip(first, clear, strict=True):
        if ok:
            used |= names
    result = []
    for claim, ok in zip(claims, clear, strict=True):
        attempt = 1
        if not ok:
            while claim(attempt) & used:
                attempt += 1
            used |= claim(attempt)
        result.append(attempt)
    return result


def unique_fields(names: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """``names`` made unique by ``first_free`` (``userId``, ``userId2``...), in the order given."""
    attempts = first_free([numbered_claims(name) for name in names], taken)
    return [numbered(name, n) for name, n in zip(names, attempts, strict=True)]


def enum_value_names(labels: Sequence[str]) -> dict[str, str]:
    """label -> its unique GraphQL enum value name, labels in their sort order."""
    return dict(zip(labels, unique_fields([enum_value_name(label) for label in labels]), strict=True))
