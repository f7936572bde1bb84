"""Property-based tests (hypothesis) over the config schema: any value, inside or outside
its documented range, of any key (numbers, strings and choices, lists, null), given on the
command line either runs a step or is refused by one ConfigError that names the key --
never a traceback and never a hang.

Each example goes through ``cli.preflight`` in-process (what ``spatialdtp-run`` runs
before Hydra writes anything: compose, type check, validate, build the simulation) on a
tiny grid, then takes one step of the simulation preflight built. The examples are
derandomized, so CI runs the same ones every time; ``-m slow`` runs many more.
"""
from __future__ import annotations

import dataclasses
import math
import signal
import string

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from spatialdtp import cli  # noqa: E402
from spatialdtp import config as config_module  # noqa: E402
from spatialdtp.config import ConfigError, to_dict  # noqa: E402
from spatialdtp.run.simulation import NonFiniteError  # noqa: E402

BASE = ["experiment=quick", "grid.shape=[8,8]", "run.days=0.05", "run.plot=false"]
#: a step that takes longer than this is a hang (a tiny grid steps in milliseconds)
HANG_S = 30


def _leaves(d, prefix=""):
    for key, value in d.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            yield from _leaves(value, path)
        elif not isinstance(value, dict):
            yield path, value


DEFAULTS = dict(_leaves(to_dict(cli.compose(BASE))))
DEFAULTS.pop("resume")          # a run file, refused by name in test_malformed_inputs
KEYS = sorted(DEFAULTS)

#: every choice the schema offers anywhere: valid for one key, wrong for most others
CHOICES = sorted({v for name in dir(config_module) if name.isupper()
                  for v in (getattr(config_module, name) if isinstance(
                      getattr(config_module, name), (tuple, list, frozenset, set)) else ())
                  if isinstance(v, str)} | {"auto", "cpu", "numpy64", "none", "run_days"})

SPECIAL_FLOATS = [0.0, -0.0, -1.0, 1e-300, 5e-324, 1e-9, 1e9, 1e30, 1e300, -1e300,
                  math.nan, math.inf, -math.inf]
floats = st.one_of(st.sampled_from(SPECIAL_FLOATS),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(-10, 10))
ints = st.one_of(st.integers(-3, 64), st.integers(-2**70, 2**70))
texts = st.one_of(st.sampled_from(CHOICES),
                  st.text(string.ascii_letters + string.digits + "_", max_size=12))
lists = st.lists(st.one_of(st.integers(-2, 40), st.floats(-1, 2), st.sampled_from(["a"])),
                 max_size=4)
any_value = st.one_of(floats, ints, texts, lists, st.booleans(), st.none())


def _like(default):
    """Values of the default's kind (mostly around it), or of any kind."""
    if isinstance(default, bool):
        same = st.booleans()
    elif isinstance(default, float):
        same = st.one_of(floats, st.floats(0, 4).map(lambda f: default * f))
    elif isinstance(default, int):
        same = ints
    elif isinstance(default, str):
        same = texts
    elif isinstance(default, list):
        same = st.one_of(lists, st.lists(st.integers(2, 12), min_size=1, max_size=4))
    else:                                   # null by default: a number, a name or null
        same = st.one_of(floats, texts, st.none())
    return st.one_of(same, same, same, any_value)


def _text(value) -> str:
    """``value`` as a user types it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_text(v) for v in value) + "]"
    return str(value)


overrides = st.sampled_from(KEYS).flatmap(
    lambda key: st.tuples(st.just(key), _like(DEFAULTS[key])))


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"no answer in {HANG_S} s")


def outcome(tmp_path, key: str, text: str) -> str:
    """'refused' (one ConfigError naming ``key``) or 'ran' (one step); anything else fails."""
    argv = [*BASE, f"hydra.run.dir={tmp_path / 'out'}", f"{key}={text}"]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_S)
    try:
        try:
            cli.preflight(argv)
        except ConfigError as err:
            message = str(err)
            assert "\n" not in message, message
            assert key in message, f"{key}={text}: refused without naming the key: {message}"
            return "refused"
        sim = cli._Prepared.sim
        assert sim is not None, f"{key}={text}: preflight passed but built nothing"
        run = sim.cfg.run
        try:
            sim.step(min(run.dt, run.output_interval_hours * 60.0, run.days * 1440.0))
        except NonFiniteError:      # a value in range whose step overflowed: named and kept
            return "non-finite"
        return "ran"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        cli._Prepared.sim = cli._Prepared.key = None
        cli._Prepared.warnings = []
        assert not (tmp_path / "out").exists(), "a run directory was created"


def _settings(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# found by this test: each made a step raise (solver input check, NaN residual) after
# validation had passed
@hypothesis.example(override=("substrates.chemokine.hindrance", 3.9281854017354315e+202))
@hypothesis.example(override=("substrates.chemokine.permeability", 1e300))
@hypothesis.example(override=("substrates.oxygen.uptake_km", 6.899011302477193e+279))
@hypothesis.example(override=("substrates.chemokine.decay", 1e300))
@hypothesis.example(override=("substrates.oxygen.blood", 1e37))
@hypothesis.example(override=("substrates.hgf.binding.sites", 1e300))
# found by this test: refused, but the message named binding.sites for a tiny binding.kd
@hypothesis.example(override=("substrates.hgf.binding.kd", 1.0630897896258371e-159))
@_settings(150)
@given(override=overrides)
def test_any_value_of_any_key_runs_a_step_or_is_refused_by_name(tmp_path, override):
    key, value = override
    assert outcome(tmp_path, key, _text(value)) in ("ran", "refused", "non-finite")


@pytest.mark.slow
@_settings(3000)
@given(override=overrides)
def test_many_values_of_every_key_run_a_step_or_are_refused_by_name(tmp_path, override):
    key, value = override
    assert outcome(tmp_path, key, _text(value)) in ("ran", "refused", "non-finite")


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_every_key_with_its_default_runs_and_with_garbage_is_refused_or_runs(tmp_path, key):
    """Each key once with a value of the wrong kind (so every key is tried in CI)."""
    default = DEFAULTS[key]
    wrong = "[1,2]" if not isinstance(default, list) else "abc"
    assert outcome(tmp_path, key, wrong) in ("ran", "refused", "non-finite")
