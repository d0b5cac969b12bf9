"""The machine line every benchmark prints, so figures are never quoted without their hardware."""

from __future__ import annotations

import os
import platform


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        with open("/proc/meminfo") as info:
            kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        memory = "? GiB"
    return (f"machine: {cpu}, {os.cpu_count()} cores, {memory}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
