"""What Linux's /proc says about a process: its resident memory and the CPU time it used."""

import math
import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Return the process's resident set size (VmRSS), in KiB: this process only, no children."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ProcessLookupError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int | list[int]) -> float:
    """Return the CPU time the process (or processes) used so far, user and system, in seconds."""
    if isinstance(pid, list):
        return sum(cpu_seconds(each) for each in pid)
    with open(f"/proc/{pid}/stat") as stat:
        # The command name, in parentheses, may hold spaces: count fields after its end.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load_average() -> float:
    """Return the machine's load average over the last minute: how busy everything else kept it."""
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return "unknown"


def busy_seconds(cores: set[int]) -> float:
    """Return the CPU time these cores spent on anything but idling, in seconds since boot."""
    busy = 0
    with open("/proc/stat") as stat:
        for line in stat:
            name, *ticks = line.split()
            if name.startswith("cpu") and name != "cpu" and int(name[3:]) in cores:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                busy += user + nice + system + irq + softirq + steal
    return busy / CLOCK_TICKS


class Others:
    """
    Measure how much of these cores processes other than `own` used over a block: on a shared
    machine that is the share the measurement did not get, in cores (0.3 is a third of a core).
    """

    def __init__(self, cores: set[int], own: list[int]):
        self.cores, self.own = cores, own
        self.share = math.nan

    def used(self) -> tuple[float, float, float]:
        own = sum(cpu_seconds(pid) for pid in self.own)
        return time.monotonic(), busy_seconds(self.cores), own

    def __enter__(self) -> "Others":
        self.start = self.used()
        return self

    def __exit__(self, *exc_info) -> None:
        (started, busy_before, own_before), (ended, busy, own) = self.start, self.used()
        self.share = max(0.0, (busy - busy_before) - (own - own_before)) / (ended - started)


def wait_for_quiet_machine(cores: set[int], *, busy_below: float = 0.15, timeout: float = 60):
    """
    Wait until these cores together are busy less than `busy_below` of a core over a second (the
    servers under test are idle then), or `timeout`; return the seconds waited.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = busy_seconds(cores)
        time.sleep(1)
        if busy_seconds(cores) - before < busy_below:
            break
    return time.monotonic() - started


def wait_until_quiet(
    pid: int | list[int], *, busy_below: float = 0.05, timeout: float = 30.0
) -> float:
    """
    Wait until the process uses less than `busy_below` of a core over half a second (it has
    finished what the last clients left it), or `timeout`; return the seconds waited.
    """
    started = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        after = cpu_seconds(pid)
        if after - before < busy_below * 0.5:
            break
        before = after
    return time.monotonic() - started
