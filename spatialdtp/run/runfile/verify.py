"""Can this run file be resumed? Checked in a child process before the file is opened for
writing, because a damaged HDF5 file can crash the library itself (a segmentation fault
on the first resume of a file killed mid-flush was measured), and a crash in a child is a
message, not a lost process.

    python -m spatialdtp.run.runfile.verify run.h5     # one JSON line: ok, problem, ...

:func:`verify` reads the root attributes, the stored config, the chunk index of every
counted frame (and the data of the last), the observables and the whole checkpoint.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


#: the checkpoint datasets and attributes a resume reads (spatialdtp.run.simulation)
RESUME_ARRAYS = ("state", "vessels")
RESUME_ATTRIBUTES = ("step", "time", "treatment")


def verify(path) -> dict:
    """{"ok", "problem", "status", "frames", "whole_frames", "fields", "checkpoint_time"} of
    a run file
    (never raises for a damaged file: ``problem`` says what is wrong)."""
    import yaml

    from .format import FORMAT, attribute_value, checkpoint_group, whole_frames

    out = {"ok": False, "problem": "", "status": None, "frames": 0, "whole_frames": 0,
           "fields": 0, "checkpoint_time": None}
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            if f.read(8) != HDF5_SIGNATURE:
                out["problem"] = "not an HDF5 file"
                return out
    except OSError as exc:
        out["problem"] = f"cannot be read ({exc.strerror})"
        return out
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        if "lock" not in str(exc).lower():
            out["problem"] = f"HDF5 cannot open it ({str(exc).splitlines()[0]})"
            return out
        f = h5py.File(path, "r", locking=False)
    with f:
        try:
            if attribute_value(f.attrs.get("format")) != FORMAT:
                out["problem"] = f"not a spatialdtp run file (no root attribute format={FORMAT!r})"
                return out
            out["status"] = str(attribute_value(f.attrs.get("status", "")))
            config = yaml.safe_load(attribute_value(f.attrs["config"]))
            if not isinstance(config, dict):
                out["problem"] = "its stored config is not a mapping"
                return out
            group = checkpoint_group(f)
            if group is None:
                out["problem"] = "it has no checkpoint to resume from"
                return out
            # what Simulation.resume reads: a hand-made or foreign checkpoint without them
            # would end a resume in a KeyError deep inside the rebuild
            missing = ([f"dataset {n!r}" for n in RESUME_ARRAYS if n not in group]
                       + [f"attribute {n!r}" for n in RESUME_ATTRIBUTES if n not in group.attrs])
            if missing:
                out["problem"] = ("its checkpoint lacks what a resume needs: "
                                  + ", ".join(missing))
                return out
            out["checkpoint_time"] = float(group.attrs["time"])
            for ds in group.values():
                ds[()]
            state, vessels = group["state"], group["vessels"]
            if state.ndim != vessels.ndim + 1 or state.shape[1:] != vessels.shape:
                out["problem"] = (f"its checkpoint's state {state.shape} and vessels "
                                  f"{vessels.shape} are not of one grid")
                return out
            out["frames"] = int(f["time"].shape[0])
            out["fields"] = len(f["fields"])
            out["whole_frames"], problem = whole_frames(f)
            obs = f["observables"]
            obs["time"][:]
            for ds in obs.values():
                ds[:min(ds.shape[0], obs["time"].shape[0])]
        except Exception as exc:  # noqa: BLE001 - whatever is damaged, say what it was
            out["problem"] = f"it is damaged ({type(exc).__name__}: {str(exc).splitlines()[0]})"
            return out
    out["ok"] = True
    out["problem"] = problem
    return out


def verify_in_child(path, timeout: float = 300.0) -> dict:
    """:func:`verify` run in a child Python; a crash or a hang there is reported as the
    file's problem."""
    try:
        proc = subprocess.run([sys.executable, "-m", "spatialdtp.run.runfile.verify",
                               os.fspath(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "problem": f"reading it did not finish in {timeout:g} s"}
    if proc.returncode < 0:
        return {"ok": False, "problem": f"reading it crashed HDF5 (signal {-proc.returncode})"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"ok": False, "problem": f"checking it failed ({tail})"}


if __name__ == "__main__":
    print(json.dumps(verify(sys.argv[1])))
