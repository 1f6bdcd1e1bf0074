"""A process's peak resident memory. Standard library only: `lambdafit.probe` imports it into
a fresh process whose start it times."""

from __future__ import annotations


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's high-water mark of resident memory (VmHWM) from /proc, in MiB.

    Not `ru_maxrss`: Linux carries that over from the parent across fork and exec, so a child
    of a large process reports the parent's peak.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")
