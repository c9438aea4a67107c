"""Argument checks shared by the configs: each failure is a ConfigError naming the field."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from heliosfl.errors import ConfigError

__all__ = ["check_float", "check_int", "known_fields"]


def check_int(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer in ``[low, high]``.

    numpy integers are accepted; bools and floats are not.

    Raises
    ------
    ConfigError
        Naming ``name``, the value and the allowed range.
    """
    allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(name, value, allowed)
    number = int(value)
    if number < low or (high is not None and number > high):
        raise ConfigError(name, value, allowed)
    return number


def check_float(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = True,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a float if it is finite and inside the interval.

    Parameters
    ----------
    name : str
        Field name for the message.
    value : object
        The value to check (ints and numpy numbers are accepted; bools are not).
    low, high : float
        Interval bounds.
    low_open, high_open : bool
        Whether each bound is excluded.

    Raises
    ------
    ConfigError
        For a non-number, NaN, an infinity, or a value outside the interval.
    """
    lo = "(" if low_open else "["
    hi = ")" if high_open or math.isinf(high) else "]"
    hi_text = "inf" if math.isinf(high) else f"{high:g}"
    allowed = f"a finite number in {lo}{low:g}, {hi_text}{hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(name, value, allowed)
    number = float(value)
    if not math.isfinite(number):
        raise ConfigError(name, value, allowed)
    below = number <= low if low_open else number < low
    above = number >= high if high_open else number > high
    if below or above:
        raise ConfigError(name, value, allowed)
    return number


def known_fields(cls: type, data: object, section: str) -> dict[str, Any]:
    """Return ``data`` as a dict after checking it names only fields of dataclass ``cls``.

    Raises
    ------
    ConfigError
        If ``data`` is not a mapping or has keys that are not fields of ``cls``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(section, data, f"a dict of {cls.__name__} fields")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(
            section, unknown, f"only fields of {cls.__name__}: " + ", ".join(sorted(names))
        )
    return dict(data)


def check_id(name: str, value: Any, *, max_chars: int = 200) -> str:
    """Return ``value`` if it is a str of 1 to `max_chars` characters that UTF-8 can encode.

    Raises
    ------
    ConfigError
        Naming ``name``; a str is shown, anything else only by its type.
    """
    allowed = f"a string of 1 to {max_chars} characters"
    if not isinstance(value, str):
        simple = value is None or isinstance(value, int | float)
        raise ConfigError(name, value if simple else _Type(value), allowed)
    if not 0 < len(value) <= max_chars:
        raise ConfigError(name, value, allowed)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(name, _Type(value), allowed + " (valid Unicode)") from None
    return value


def check_private_id(
    name: str, value: Any, *, max_chars: int = 200, show_length: bool = True
) -> str:
    """Return ``value`` if it is a printable str of 1 to `max_chars` characters (valid UTF-8).

    For ids that may identify a person (record ids, data subjects): the message never
    echoes the value, only its type (and, with `show_length`, a str's length).

    Raises
    ------
    ConfigError
        Naming ``name``.
    """
    if isinstance(value, str) and 0 < len(value) <= max_chars and value.isprintable():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return value
    kind = type(value).__name__
    shown = (
        f"<{kind} of length {len(value)}>"
        if show_length and isinstance(value, str)
        else f"<{kind}>"
    )
    raise ConfigError(name, shown, f"a printable str of 1 to {max_chars} characters")


class _Type(str):
    """A value shown by its type only."""

    __slots__ = ()

    def __new__(cls, value: object) -> _Type:
        return super().__new__(cls, f"<{type(value).__name__}>")

    def __repr__(self) -> str:
        return str(self)
