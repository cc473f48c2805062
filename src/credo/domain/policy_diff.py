"""What changed between two policies, section by section, item by item, field by field."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from credo.domain.policy import Policy

# Sections in the order a reader meets them; each names how its items are keyed and which
# fields come first (the rest of an item's fields follow in the order the model declares).
_SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("policy", "", ()),
    ("categories", "id", ("points", "valid_for", "cap", "publish_for", "repairable",
                          "suspend_while_disputed", "context")),
    ("grades", "name", ("min",)),
    ("lists", "id", ("when", "excludes", "kind")),
    ("measures", "id", ("trigger", "contexts", "blocks", "authority")),
    ("purposes", "id", ("authorities", "sees")),
    ("authorities", "id", ("may_file",)),
    ("promotion", "", ()),
)  # fmt: skip


class ChangeKind(StrEnum):
    """How an item differs between the two policies."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of an item: its old and new value (None where absent)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class ItemChange:
    """One item of a section (a category, a grade...) added, removed or changed."""

    section: str
    key: str
    kind: ChangeKind
    fields: tuple[FieldChange, ...]

    def to_json(self) -> dict[str, Any]:
        """{"key", "change", "fields": {name: {"old", "new"}}}."""
        return {
            "key": self.key,
            "change": self.kind.value,
            "fields": {f.field: {"old": f.old, "new": f.new} for f in self.fields},
        }


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """Every difference between policy `old` and policy `new`, grouped by section."""

    old: str
    new: str
    changes: tuple[ItemChange, ...]

    @property
    def identical(self) -> bool:
        """Whether the two policies mean the same (formatting and comments aside)."""
        return not self.changes

    def section(self, name: str) -> list[ItemChange]:
        """The changes of one section, in order."""
        return [c for c in self.changes if c.section == name]

    def to_json(self) -> dict[str, Any]:
        """Machine-readable form: every section, with an empty list when nothing changed."""
        return {
            "old": self.old,
            "new": self.new,
            "identical": self.identical,
            "sections": {
                name: [c.to_json() for c in self.section(name)] for name, _, _ in _SECTIONS
            },
        }

    def lines(self) -> list[str]:
        """A readable diff: `+` added, `-` removed, `~` changed with old -> new values."""
        out = [f"policy {self.old} -> {self.new}"]
        if self.identical:
            return [*out, "  no differences"]
        for name, _, _ in _SECTIONS:
            changes = self.section(name)
            if not changes:
                continue
            out.append(f"[{name}]")
            for change in changes:
                out.extend(_change_lines(change))
        return out


def _change_lines(change: ItemChange) -> list[str]:
    label = change.key or change.section
    if change.kind is ChangeKind.ADDED:
        values = ", ".join(f"{f.field} {render(f.new)}" for f in change.fields)
        return [f"  + {label}" + (f" ({values})" if values else "")]
    if change.kind is ChangeKind.REMOVED:
        return [f"  - {label}"]
    if not change.key:  # the [policy] or [promotion] table itself: its fields directly
        return [f"  ~ {f.field}: {render(f.old)} -> {render(f.new)}" for f in change.fields]
    head = [f"  ~ {label}"]
    return head + [f"      {f.field}: {render(f.old)} -> {render(f.new)}" for f in change.fields]


def render(value: Any) -> str:
    """A field value as a reader expects it: `P2Y`, `-100`, `[a, b]`, `{list = x}`, `-`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {render(v)}" for k, v in value.items()) + "}"
    return str(value)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")


def _ordered(first: Sequence[str], *items: dict[str, Any]) -> list[str]:
    names = [n for n in first if any(n in i for i in items)]
    for item in items:
        names += [n for n in item if n not in names]
    return names


def _compare(
    section: str,
    key: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    first: Sequence[str],
    key_field: str,
) -> ItemChange | None:
    if old is None and new is not None:
        fields = [FieldChange(n, None, new[n]) for n in _ordered(first, new) if n != key_field]
        fields = [f for f in fields if f.new is not None]
        return ItemChange(section, key, ChangeKind.ADDED, tuple(fields))
    if new is None and old is not None:
        fields = [FieldChange(n, old[n], None) for n in _ordered(first, old) if n != key_field]
        fields = [f for f in fields if f.old is not None]
        return ItemChange(section, key, ChangeKind.REMOVED, tuple(fields))
    if old is None or new is None:  # absent on both sides (an optional table)
        return None
    changed = [
        FieldChange(n, old.get(n), new.get(n))
        for n in _ordered(first, old, new)
        if old.get(n) != new.get(n)
    ]
    if not changed:
        return None
    return ItemChange(section, key, ChangeKind.CHANGED, tuple(changed))


def _keyed(models: Sequence[BaseModel], key: str) -> dict[str, dict[str, Any]]:
    return {str(getattr(m, key)): _dump(m) for m in models}


def diff_policies(old: Policy, new: Policy) -> PolicyDiff:
    """Compare two policies; items are matched by id (grades by name).

    >>> diff_policies(worked, worked).identical
    True
    >>> [c.key for c in diff_policies(worked, stricter).section("grades")]
    ['C']
    """
    changes: list[ItemChange] = []
    single: dict[str, Callable[[Policy], BaseModel | None]] = {
        "policy": lambda p: p.policy,
        "promotion": lambda p: p.promotion,
    }
    for section, key, first in _SECTIONS:
        if section in single:
            before, after = single[section](old), single[section](new)
            change = _compare(
                section,
                "",
                _dump(before) if before is not None else None,
                _dump(after) if after is not None else None,
                first,
                "",
            )
            if change is not None:
                changes.append(change)
            continue
        olds = _keyed(getattr(old, section), key)
        news = _keyed(getattr(new, section), key)
        for ident in [*olds, *(k for k in news if k not in olds)]:
            change = _compare(section, ident, olds.get(ident), news.get(ident), first, key)
            if change is not None:
                changes.append(change)
    return PolicyDiff(old=old.label, new=new.label, changes=tuple(changes))
