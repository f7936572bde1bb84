"""What every config check raises, and the small checks the section validators share.

A failed check raises one :class:`ConfigError` whose message names the key, the value and
what is allowed, e.g. ``substrates.oxygen.diffusion=-5.0: must be a finite number >= 0``.
Every check refuses NaN and ±inf: a NaN compares False with everything, so a check written
as ``value < limit`` alone would let it through (``stop_day=nan`` silently meaning "never").
"""
from __future__ import annotations

import math
from dataclasses import fields


class ConfigError(ValueError):
    """A configuration value is not allowed. The message names key, value and what is allowed."""


def fail(key: str, value, allowed: str):
    raise ConfigError(f"{key}={value!r}: {allowed}")


def is_number(value) -> bool:
    """An int or float (not a bool), finite."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def finite(key, value):
    if not is_number(value):
        fail(key, value, "must be a finite number")


def nonneg(key, value):
    if not (is_number(value) and value >= 0):
        fail(key, value, "must be a finite number >= 0")


def positive(key, value):
    if not (is_number(value) and value > 0):
        fail(key, value, "must be a finite number > 0")


def fraction(key, value):
    if not (is_number(value) and 0 <= value <= 1):
        fail(key, value, "must be a fraction in [0, 1]")


def integer_in(key, value, lo: int, hi: int | None = None):
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= lo
            and (hi is None or value <= hi)):
        fail(key, value, f"must be an integer >= {lo}" if hi is None
             else f"must be an integer in [{lo}, {hi}]")


def choice(key, value, choices):
    if value not in choices:
        fail(key, value, f"allowed values are {list(choices)}")


def nonneg_numbers(prefix: str, obj):
    """Every float field of a dataclass must be finite and >= 0 (rates, lengths, levels)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            nonneg(f"{prefix}.{f.name}", v)
