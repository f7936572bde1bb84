"""What every config check raises, and the small checks the section validators share.

A failed check raises one :class:`ConfigError` whose message names the key, the value and
what is allowed, e.g. ``substrates.oxygen.diffusion=-5.0: must be a finite number >= 0``.
"""
from __future__ import annotations

import math
from dataclasses import fields


class ConfigError(ValueError):
    """A configuration value is not allowed. The message names key, value and what is allowed."""



def fail(key: str, value, allowed: str):
    raise ConfigError(f"{key}={value!r}: {allowed}")


def nonneg(key, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        fail(key, value, "must be a finite number >= 0")


def positive(key, value):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        fail(key, value, "must be a finite number > 0")


def fraction(key, value):
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        fail(key, value, "must be a fraction in [0, 1]")


def choice(key, value, choices):
    if value not in choices:
        fail(key, value, f"allowed values are {list(choices)}")


def nonneg_numbers(prefix: str, obj):
    """Every float field of a dataclass must be finite and >= 0 (rates, lengths, levels)."""
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            nonneg(f"{prefix}.{f.name}", v)

