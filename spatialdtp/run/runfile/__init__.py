"""The run file: one HDF5 file per run (layout and shared helpers in :mod:`.format`).

:mod:`.writer` (:class:`RunWriter`) · :mod:`.reader` (:func:`read_run`,
:func:`read_checkpoint`, :func:`read_observables`) · :mod:`.write_behind`
(:class:`WriteBehind`) · :mod:`.lock` (who writes a file) · :mod:`.verify` (can a file be
resumed, checked in a child process).
"""
from .format import (
           FORMAT,
           FORMAT_VERSION,
           attribute_value,
           fields_from_layout,
           is_run_file,
           whole_frames,
)
from .lock import RunFileBusy, check_not_busy, lock_path
from .reader import RunData, observables_of, read_checkpoint, read_observables, read_run
from .write_behind import WriteBehind
from .writer import RunFileExists, RunFileWriteError, RunWriter

__all__ = ["FORMAT", "FORMAT_VERSION", "RunData", "RunFileBusy", "RunFileExists",
           "RunFileWriteError", "RunWriter", "WriteBehind", "attribute_value", "check_not_busy",
           "fields_from_layout", "is_run_file", "lock_path", "observables_of", "read_checkpoint",
           "read_observables", "read_run", "whole_frames"]
