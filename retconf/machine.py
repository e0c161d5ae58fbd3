"""What machine a run's numbers came from: the CPU, the instruction set oneDNN's bfloat16 kernels
use on it (they sum in a different order on different CPU families, so a training's numbers
depend on it), the accelerator and the library versions. Recorded in ``summary.json``
(``machine``) and shown in the reports' provenance."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

# oneDNN prints the kernel it picked for a bfloat16 convolution when ONEDNN_VERBOSE is set.
_PROBE = ("import torch\nwith torch.autocast('cpu', dtype=torch.bfloat16):\n"
          "    torch.nn.Conv2d(8, 8, 3)(torch.ones(1, 8, 8, 8))")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def onednn_isa(cap: str | None = None) -> str:
    """The instruction set oneDNN reports for a bfloat16 convolution in a fresh process, under
    ``ONEDNN_MAX_CPU_ISA=cap`` when given (else under this process's setting). "unknown" when
    the probe prints nothing (e.g. a torch build without oneDNN verbose output)."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    try:
        res = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in res.stdout.splitlines():
        if ",isa:" in line:
            return line.split(",isa:", 1)[1].strip()
    return "unknown"


def machine_record() -> dict:
    """``{"cpu", "onednn_isa", "onednn_max_cpu_isa", "accelerator", "torch", "python"}`` of this
    machine and process (``onednn_max_cpu_isa``: the environment's cap, None when unset)."""
    import torch

    accel = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_name(), "onednn_isa": onednn_isa(), "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "accelerator": accel, "torch": torch.__version__, "python": platform.python_version()}
