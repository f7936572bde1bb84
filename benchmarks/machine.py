"""What a result was measured on: machine, device, versions, commit."""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: environment variables that change how fast the backends run
ENV_KEYS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND",
            "CUDA_VISIBLE_DEVICES", "CUPY_CACHE_DIR", "SPATIALDTP_KERNEL_CACHE", "CXX")


def _run(*cmd) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=30,
                             env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info() -> dict:
    commit = _run("git", "rev-parse", "HEAD")
    status = _run("git", "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), flags=re.M)
        if m:
            return m.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"^MemTotal:\s+(\d+) kB", f.read(), flags=re.M)
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for mod in ("numpy", "h5py", "cupy", "hydra", "omegaconf", "matplotlib", "spatialdtp"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:       # not installed (or no GPU for cupy): recorded as absent
            out[mod] = None
    cxx = os.environ.get("CXX", "g++")
    v = _run(cxx, "--version")
    out["cxx"] = v.splitlines()[0] if v else None
    return out


def gpu_info(cp) -> dict:
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return {"name": name, "memory_bytes": int(props["totalGlobalMem"]),
            "compute_capability": str(dev.compute_capability),
            "multiprocessors": int(props["multiProcessorCount"]),
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
            "driver": cp.cuda.runtime.driverGetVersion()}


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-+", "-", s)


def describe(gpu: dict | None) -> dict:
    """The machine record, and the results folder's name: the GPU's name where a GPU ran
    (``nvidia-h200``), else the CPU's and its core count (``cpu-amd-epyc-2c``)."""
    cpu = cpu_model()
    info = {"platform": platform.platform(), "cpu": cpu, "cores": cores(),
            "host_memory_bytes": host_memory(), "gpu": gpu,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git": git_info(), "versions": versions(),
            "environment": {k: os.environ[k] for k in ENV_KEYS if k in os.environ}}
    info["device_slug"] = slug(gpu["name"]) if gpu else slug(f"cpu {cpu} {cores()}c")
    return info
