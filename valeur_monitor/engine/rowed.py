"""One home for comparing, showing and mapping the engine's native classes by their fields."""

from __future__ import annotations

from typing import ClassVar


class Rowed:
    """A class whose value is its fields in declaration order (`row`, named by `FIELDS`).

    The engine's per-customer classes and the event were msgspec Structs, compared by value,
    unhashable and shown with their fields; as plain classes with slots (native classes when
    compiled by mypyc) they get the same from here. Equality needs the same class."""

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def row(self) -> tuple[object, ...]:
        """The fields in declaration order (`Class(*row)` is an equal object)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, object]:
        """Field name -> value, in declaration order (the map a Struct was written as)."""
        return dict(zip(self.FIELDS, self.row(), strict=True))

    # compared by value, and unhashable as the Structs were (defining __eq__ sets __hash__ to
    # None; an explicit `__hash__ = None` would be a field of the compiled class)
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rowed) or type(other) is not type(self):
            return NotImplemented
        return self.row() == other.row()

    def __ne__(self, other: object) -> bool:
        if not isinstance(other, Rowed) or type(other) is not type(self):
            return NotImplemented
        return self.row() != other.row()

    def __repr__(self) -> str:
        return type(self).__name__ + "(" + ", ".join(
            f"{k}={v!r}" for k, v in zip(self.FIELDS, self.row(), strict=True)) + ")"


def as_map(value: object) -> object:
    """msgspec's `enc_hook` for these classes: the map their Structs were written as (field
    names in declaration order), so the stored bytes are the Structs' bytes."""
    if isinstance(value, Rowed):
        return value.to_dict()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")
