"""Processes of this machine as /proc tells them: a process tree, processes by title, their
resident memory, whether one is still alive. Benches and tests use them to find what a service
started (Ray's raylet, workers, Serve replicas) and to measure or end it."""

from __future__ import annotations

import re
from pathlib import Path


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` together (those that still exist), from /proc."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if found := re.search(r"^VmRSS:\s+(\d+) kB", status, re.M):
            total += int(found.group(1)) << 10
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        out += frontier
    return out


def titled(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (Serve replicas: ``ServeReplica:APP:``)."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                out.append(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return out


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
