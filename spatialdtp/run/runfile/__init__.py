"""The run file: one HDF5 file per run (layout and shared helpers in :mod:`.format`).

:mod:`.writer` (:class:`RunWriter`) · :mod:`.reader` (:func:`read_run`,
:func:`read_checkpoint`, :func:`read_observables`) · :mod:`.write_behind`
(:class:`WriteBehind`).
"""
from .format import (
           FORMAT,
           FORMAT_VERSION,
           attribute_value,
           fields_from_layout,
           is_run_file,
)
from .reader import RunData, observables_of, read_checkpoint, read_observables, read_run
from .write_behind import WriteBehind
from .writer import RunWriter

__all__ = ["FORMAT", "FORMAT_VERSION", "RunData", "RunWriter", "WriteBehind", "attribute_value",
           "fields_from_layout", "is_run_file", "observables_of", "read_checkpoint", "read_observables", "read_run"]
