"""Domain records kept in JSON columns (an order's terms, its eligibility, its dose ledger, a draw's inputs) have
the shape they have in a Temporal payload: written with the payload converter's JSON encoder, read back with its
value_to_type. One generic pair for every domain dataclass, instead of a to/from-dict function per class."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.converter import AdvancedJSONEncoder, value_to_type

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T")


def plain(value: DataclassInstance) -> dict[str, Any]:
    """The JSON form of a domain dataclass, as a payload carries it: nested dataclasses become objects, tuples
    lists, vocabulary members their strings."""
    found: dict[str, Any] = json.loads(json.dumps(value, cls=AdvancedJSONEncoder))
    return found


def typed(cls: type[_T], data: Any) -> _T:
    """A stored form back as the domain dataclass `cls`; extra keys are ignored, missing ones take defaults.
    Raises ValueError when it does not fit (a required field missing, a value the class rejects)."""
    try:
        return value_to_type(cls, data)  # type: ignore[no-any-return]  # the SDK types its result Any
    except TypeError as error:
        raise ValueError(f"not a stored {cls.__name__}: {error}") from error
