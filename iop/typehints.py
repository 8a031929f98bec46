"""A cache for the type hints of payload classes.

temporalio's JSON payload converter calls typing.get_type_hints on every dataclass (and TypedDict)
it decodes, for every payload, and with `from __future__ import annotations` that re-parses and
re-evaluates each field's string annotation every time: 7.7% of the worker's CPU in the profile of
issue 20. A class's annotations do not change after it is defined, so the hints of each class are
computed once. The cache is keyed weakly: a class the workflow sandbox re-created for one workflow
run (a module it re-imports) is dropped with that run. Calls with explicit namespaces or
include_extras, and anything that is not a class, go to typing.get_type_hints unchanged.

Installed by iop.codec.data_converter (the one converter of the worker, the API and the CLI): it
replaces the name the converter module looks up, nothing else of typing.
"""

from __future__ import annotations

import threading
import typing
import weakref
from typing import Any

from temporalio.converter import _payload_converter

_uncached = typing.get_type_hints
_hints: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def cached_type_hints(
    obj: Any, globalns: Any = None, localns: Any = None, include_extras: bool = False
) -> dict[str, Any]:
    if globalns is not None or localns is not None or include_extras or not isinstance(obj, type):
        return _uncached(obj, globalns, localns, include_extras)
    with _lock:
        hints = _hints.get(obj)
    if hints is None:
        hints = _uncached(obj)  # a NameError (a forward reference not yet defined) is not cached
        with _lock:
            _hints[obj] = hints
    return dict(hints)  # the caller's own copy: the cached one is never handed out


def install() -> None:
    _payload_converter.get_type_hints = cached_type_hints  # type: ignore[attr-defined]  # patches the SDK


def uninstall() -> None:
    """Back to the SDK's behaviour (the profile's "before" figure)."""
    _payload_converter.get_type_hints = _uncached  # type: ignore[attr-defined]  # patches the SDK
    with _lock:
        _hints.clear()


def installed() -> bool:
    return _payload_converter.get_type_hints is cached_type_hints  # type: ignore[attr-defined]  # SDK


def cached_classes() -> int:
    with _lock:
        return len(_hints)
