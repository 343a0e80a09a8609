"""``stats``: what a container uses, read from its cgroup.

The kernel counts, per cgroup, the CPU time its tasks used (v1 ``cpuacct.usage``, v2 the
``usage_usec`` of ``cpu.stat``), the memory they hold (``memory.usage_in_bytes`` /
``memory.current``) against its limit, and how many tasks it has (``pids.current``). Memory
and PIDs are levels, read once. CPU time only grows, so a percentage needs two readings:
the CPU time used between them divided by the wall time between them, where 100% is one
core kept busy the whole time (a container using two cores fully shows 200%).

See it: ``minidocker run -d --name spin busybox sh -c 'while :; do :; done'``, then
``minidocker stats --no-stream`` and ``cat /sys/fs/cgroup/cpuacct/minidocker/<id>/cpuacct.usage``.
"""

from __future__ import annotations

import time
from typing import Any


def sample_stats(running: list, interval: float = 0.5) -> list[dict[str, Any]]:
    """One row per container of ``running``: CPU % over ``interval`` seconds, memory usage
    and limit, PIDs."""
    from minidocker.linux import cgroups

    managers = [(c, cgroups.manager(c.id)) for c in running]
    first = {c.id: m.stats() for c, m in managers}
    t0 = time.monotonic()
    time.sleep(interval)
    elapsed = time.monotonic() - t0
    rows = []
    for c, m in managers:
        s = m.stats()
        cpu = (s.cpu_usage_ns - first[c.id].cpu_usage_ns) / (elapsed * 1e9) * 100
        rows.append(
            {
                "ID": c.id,
                "Name": c.name,
                "CPUPerc": max(0.0, cpu),
                "MemUsage": s.memory_usage,
                "MemLimit": s.memory_limit,
                "PIDs": s.pids,
            }
        )
    return rows
