"""What a run checks before anything is written: its run directory, its run file, the file
it resumes, and the simulation itself (config, backend, tissue files, memory).

Each check raises one :class:`~spatialdtp.config.ConfigError` naming the key or file, the
value and what is allowed; ``spatialdtp-run`` turns it into one line and exit code 2
before Hydra creates the run directory (see :mod:`spatialdtp.cli`).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..backends import BackendUnavailable
from ..config import ConfigError
from .runfile.format import attribute_value, open_read
from .runfile.lock import RunFileBusy, check_not_busy
from .runfile.verify import HDF5_SIGNATURE, verify_in_child
from .runfile.writer import reserve_bytes

#: free space a run needs beyond its disk reserve (the run file's first frame and metadata)
MARGIN_BYTES = 4 * 2**20


def check_run_dir(run_dir, key: str = "hydra.run.dir", n_fields: int = 0) -> None:
    """``run_dir`` exists as a directory or can be created, and is writable, with room for
    the disk reserve of a run file of ``n_fields`` fields."""
    p = Path(os.path.abspath(os.fspath(run_dir)))
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{key}={os.fspath(run_dir)!r}: exists and is not a directory")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key}={os.fspath(run_dir)!r}: cannot be created, {parent} is "
                          "not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={os.fspath(run_dir)!r}: cannot be written, {parent} is not "
                          "writable by this user")
    need = reserve_bytes(n_fields) + MARGIN_BYTES
    free = _free_bytes(parent)
    if free is not None and free < need:
        raise ConfigError(f"{key}={os.fspath(run_dir)!r}: the disk holding {parent} has "
                          f"{free / 2**20:.1f} MiB free; a run needs at least "
                          f"{need / 2**20:.0f} MiB")


def _free_bytes(directory) -> int | None:
    try:
        st = os.statvfs(directory)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def check_new_run_file(path, overwrite: bool, key: str = "run.output") -> None:
    """A new run may be written at ``path``: nothing is there, or ``overwrite`` and no live
    process writes it."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    try:
        check_not_busy(path)
    except RunFileBusy as err:
        raise ConfigError(f"{key}: {err}") from None
    if path.is_dir():
        raise ConfigError(f"{key}={os.fspath(path)!r}: is a directory")
    if not overwrite:
        raise ConfigError(
            f"{key}: the run file {os.fspath(path)!r} exists ({_describe(path)}); a new run "
            f"never replaces it: continue it with +resume={path}, choose another "
            "hydra.run.dir, or pass run.overwrite=true to replace it")


def _describe(path) -> str:
    try:
        with open_read(path) as f:
            return f"status {attribute_value(f.attrs.get('status', '?'))!r}"
    except (OSError, RuntimeError, ValueError):
        return "not readable as HDF5"


def check_resume_file(path, key: str = "resume") -> dict:
    """The file ``resume`` names can be resumed: it exists, is a spatialdtp run file with a
    readable checkpoint, can be written, and no live process writes it. Returns what
    :func:`~.runfile.verify.verify` found (the file's frames, status)."""
    where = f"{key}={os.fspath(path)!r}"
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{where}: no such file")
    if p.is_dir():
        raise ConfigError(f"{where}: is a directory; give the run file inside it "
                          f"(e.g. {p / 'run.h5'})")
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
    if head != HDF5_SIGNATURE:
        raise ConfigError(f"{where}: not an HDF5 file, so not a spatialdtp run file")
    if not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{where}: cannot be resumed: the file or its directory is not "
                          "writable by this user")
    try:
        check_not_busy(p)
    except RunFileBusy as err:
        raise ConfigError(f"{key}: {err}") from None
    report = verify_in_child(p)
    if not report.get("ok"):
        raise ConfigError(f"{where}: cannot be resumed: {report.get('problem')}")
    need = reserve_bytes(report.get("fields", 0)) + MARGIN_BYTES
    free = _free_bytes(p.parent)
    if free is not None and free < need:
        raise ConfigError(f"{where}: cannot be resumed: the disk holding it has "
                          f"{free / 2**20:.1f} MiB free; resuming needs at least "
                          f"{need / 2**20:.0f} MiB")
    return report


def prepare_run(cfg, run_file):
    """The simulation of a new run whose file will be ``run_file``, checked and built (no
    file is written)."""
    from .simulation import Simulation

    from ..config import n_fields

    check_run_dir(Path(run_file).parent, n_fields=n_fields(cfg))
    check_new_run_file(run_file, cfg.run.overwrite)
    return _built(lambda: Simulation(cfg))


def prepare_resume(path, days=None, report: dict | None = None):
    """(simulation, report): the simulation that resumes ``path`` (its stored config,
    ``days`` if given), and what :func:`check_resume_file` found (``report``: already)."""
    from .simulation import Simulation

    report = report or check_resume_file(path)
    try:
        return _built(lambda: Simulation.resume(path, days=days)), report
    except ConfigError as err:
        raise ConfigError(f"resume={os.fspath(path)!r}: its stored config is refused: "
                          f"{err}") from None


def _built(make):
    try:
        return make()
    except BackendUnavailable as err:
        text = str(err)
        raise ConfigError(text if text.startswith("backend.name") else
                          f"backend.name: {text}") from None
