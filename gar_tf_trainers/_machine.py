"""Which CPU a run happened on, for records: learned results depend on the instruction
set (saved_policies/README.md), so the name carries the widest vector ISA."""

from __future__ import annotations

import platform
import re
from pathlib import Path

#: Vector instruction sets, widest first.
ISAS = ("avx512f", "avx2", "avx")


def cpu(cpuinfo: str | None = None) -> str:
    """``'<model name> (<widest vector ISA>)'``, e.g. ``'AMD EPYC (avx2)'``, from
    ``cpuinfo`` (default: ``/proc/cpuinfo``; ``platform.processor()`` where it is missing)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
    flags = set(flags.group(1).split()) if flags else set()
    isa = next((f for f in ISAS if f in flags), "no avx")
    name = model.group(1).strip() if model else platform.processor() or "unknown CPU"
    return f"{name} ({isa})"
