"""Test hook, imported by every Python started with this directory on PYTHONPATH: holds the
run file writer at the start of one of its methods so that a test can send a signal while
the final checkpoint (or the closing status) is being written. It changes no behaviour
unless ``SDTP_TEST_HOLD`` names a directory and that directory holds ``armed``.

``SDTP_TEST_HOLD_AT`` names the held method of RunWriter (``write_checkpoint`` or
``close``) or ``write_outputs`` (the summary files beside a complete run file). When it is entered while armed, ``<dir>/<method>.begin`` is created and the
method waits for ``<dir>/<method>.go`` (a minute at most) before it runs as usual; a signal
that arrives meanwhile is handled by the run's own handler, as it would be during a slow
write.
"""
import os
import time
from pathlib import Path

_HOLD = os.environ.get("SDTP_TEST_HOLD")
_AT = os.environ.get("SDTP_TEST_HOLD_AT", "write_checkpoint")

if _HOLD:
    if _AT == "write_outputs":
        from spatialdtp.run.simulation import Simulation as _owner
    else:
        from spatialdtp.run.runfile.writer import RunWriter as _owner

    _original = getattr(_owner, _AT)

    def _held(self, *args, **kwargs):
        hold = Path(_HOLD)
        if (hold / "armed").exists() and not (hold / f"{_AT}.begin").exists():
            (hold / f"{_AT}.begin").touch()
            deadline = time.monotonic() + 60
            while not (hold / f"{_AT}.go").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        return _original(self, *args, **kwargs)

    setattr(_owner, _AT, _held)
