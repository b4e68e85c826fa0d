"""
The bench's table: every figure of the site next to its baselines from the same run, as a ratio,
with the target it is held to and whether it meets it.
"""

import dataclasses
import math
import statistics

from bench.servers import FLOOR, RELAY, SITE, SITE_POSTGRES, SITE_REDIS, SITE_TWO_PROCESSES

# The targets, as multiples of the daphne floor (the Chromium one of the bare relay).
STEADY_TARGET = 2.0
STEADY_REDIS_TARGET = 3.0
BURST_TARGET = 0.8
IDLE_TARGET = 1.25
STORM_TARGET_SECONDS = 1.0
CHROMIUM_TARGET = 1.3

# The burst's phases on one server, in order: a burst, a crowd that comes and goes, a burst again.
FRESH, CHURN, AFTER_CHURN = BURST_PHASES = ("fresh", "churn", "after_churn")

# A measurement was disturbed by other work on the machine when other processes used more than
# CALM of a core of the bench's meanwhile, or (in steady) the load generator sent late by more
# than LATE_MS at p99.
CALM = 0.1
LATE_MS = 5.0


@dataclasses.dataclass
class Row:
    measure: str
    relay: str = "–"
    floor: str = "–"
    site: str = "–"
    ratio: str = "–"
    target: str = "–"
    result: str = "–"


def seconds_or_ms(ms: float) -> str:
    if ms is None or math.isnan(ms):
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.3g} ms"


def rate(per_second: float) -> str:
    return f"{per_second / 1000:.1f}k/s" if per_second >= 1000 else f"{per_second:.0f}/s"


def times(value: float, baseline: float) -> float:
    if not baseline or value is None or math.isnan(value) or math.isnan(baseline):
        return math.nan
    return value / baseline


def ratio(value: float, floor: float, relay: float | None = None) -> str:
    """Say how many times the floor (and the bare relay) a figure is."""
    parts = []
    for baseline, name in ((floor, "floor"), (relay, "relay")):
        multiple = times(value, baseline) if baseline is not None else math.nan
        if not math.isnan(multiple):
            parts.append(f"×{multiple:.3g} {name}")
    return ", ".join(parts) or "–"


def verdict(passed: bool | None) -> str:
    return "–" if passed is None else ("PASS" if passed else "FAIL")


def failed(figures: dict | None) -> str | None:
    if figures is None:
        return "not run"
    if "error" in figures:
        return "error: " + figures["error"][:60]
    return None


def steady_rows(results: dict, plan) -> list[Row]:
    rows = []
    for sockets, runs in results.get("steady", {}).items():
        relay, floor = runs.get(RELAY), runs.get(FLOOR)
        relay_p99 = relay["p99_ms"] if not failed(relay) else math.nan
        floor_p99 = floor["p99_ms"] if not failed(floor) else math.nan
        targeted = int(sockets) == plan.target_sockets
        for name in (SITE, SITE_REDIS, SITE_TWO_PROCESSES):
            if name not in runs:
                continue
            site = runs[name]
            limit = STEADY_TARGET if name == SITE else STEADY_REDIS_TARGET
            label = f"steady {plan.rate:g} signals/s over {sockets} sockets"
            label += {
                SITE_REDIS: ", with REDIS_URL",
                SITE_TWO_PROCESSES: ", 2 processes over Redis",
            }.get(name, "")
            # The issue sets targets for one process; two on the same core are for comparison.
            row_targeted = targeted and name != SITE_TWO_PROCESSES
            row = Row(
                label + ": p50/p99/max, lost",
                relay=f"p99 {seconds_or_ms(relay_p99)}" if name == SITE else "–",
                floor=f"p99 {seconds_or_ms(floor_p99)}",
                target=f"≤ {limit:g}× floor, 0 lost" if row_targeted else "–",
            )
            problem = failed(site)
            if problem:
                row.site, row.result = problem, "ERROR"
            else:
                row.site = (
                    f"{seconds_or_ms(site['p50_ms'])} / {seconds_or_ms(site['p99_ms'])} / "
                    f"{seconds_or_ms(site['max_ms'])}, {site['lost']} lost"
                )
                row.ratio = ratio(site["p99_ms"], floor_p99, relay_p99 if name == SITE else None)
                if row_targeted:
                    multiple = times(site["p99_ms"], floor_p99)
                    row.result = verdict(multiple <= limit and site["lost"] == 0)
            rows.append(row)
    return rows


def burst_rows(results: dict, plan) -> list[Row]:
    runs = results.get("burst")
    if not runs:
        return []
    rows = []
    for phase, label in (
        (FRESH, "on a fresh server"),
        (AFTER_CHURN, f"after {plan.churn_sockets} sockets came and went"),
    ):

        def phase_of(name: str, phase: str = phase) -> dict | None:
            """The figures of this phase on that server, or of the error that stopped it."""
            run = runs.get(name)
            if failed(run):
                return run
            # A phase that did not run: an earlier one (the churn, say) failed.
            earlier = [run[name] for name in BURST_PHASES if "error" in run.get(name, {})]
            return run.get(phase) or (earlier[0] if earlier else None)

        def shown(name: str) -> str:
            figures = phase_of(name)
            problem = failed(figures)
            if problem:
                return problem
            lost = figures["lost"]
            return rate(figures["msgs_per_s"]) + (f", {lost} lost" if lost else "")

        def figure(name: str) -> float:
            figures = phase_of(name)
            return math.nan if failed(figures) else figures["msgs_per_s"]

        relay, floor, site = figure(RELAY), figure(FLOOR), figure(SITE)
        multiple = times(site, floor)
        result = verdict(
            None
            if math.isnan(multiple)
            else multiple >= BURST_TARGET and phase_of(SITE)["lost"] == 0
        )
        rows.append(
            Row(
                f"burst, {plan.burst_pairs} pairs × {plan.burst_signals} signals, {label}: msgs/s",
                relay=shown(RELAY),
                floor=shown(FLOOR),
                site=shown(SITE),
                ratio=ratio(site, floor, relay),
                target=f"≥ {BURST_TARGET:g}× floor, 0 lost",
                result="ERROR" if failed(phase_of(SITE)) else result,
            )
        )
    return rows


def idle_rows(results: dict, plan) -> list[Row]:
    runs = results.get("idle")
    if not runs:
        return []

    def figure(name: str) -> float:
        run = runs.get(name)
        return math.nan if failed(run) else run["kib_per_socket"]

    relay, floor, site = figure(RELAY), figure(FLOOR), figure(SITE)
    multiple = times(site, floor)

    def kib(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.1f} KiB"

    return [
        Row(
            f"idle socket: server RSS per socket, {plan.idle_sockets} sockets after "
            f"{plan.idle_seconds:g} s with pings",
            relay=kib(relay),
            floor=kib(floor),
            site=kib(site) if not math.isnan(site) else failed(runs.get(SITE)) or "–",
            ratio=ratio(site, floor, relay),
            target=f"≤ {IDLE_TARGET:g}× floor",
            result="ERROR"
            if failed(runs.get(SITE))
            else verdict(None if math.isnan(multiple) else multiple <= IDLE_TARGET),
        )
    ]


def storm_rows(results: dict, plan) -> list[Row]:
    runs = results.get("storm")
    if not runs:
        return []

    def seconds(name: str) -> float:
        run = runs.get(name)
        return math.nan if failed(run) else run["seconds"]

    def shown(name: str) -> str:
        run = runs.get(name)
        problem = failed(run)
        if problem:
            return problem
        text = f"{run['seconds']:.2f} s, {run['lost']} lost"
        missing = run["pairs_expected"] - run["pairs_negotiated"]
        return text + (f", {missing} pairs never met" if missing else "")

    relay, floor = seconds(RELAY), seconds(FLOOR)
    rows = []
    for name, label in (
        (SITE, "in-process"),
        (SITE_REDIS, "with REDIS_URL"),
        (SITE_POSTGRES, "PostgreSQL"),
    ):
        if name not in runs:
            continue
        run = runs[name]
        passed = None
        if not failed(run):
            passed = (
                run["seconds"] <= STORM_TARGET_SECONDS
                and run["lost"] == 0
                and run["pairs_negotiated"] == run["pairs_expected"]
            )
        rows.append(
            Row(
                f"storm: {plan.storm_rooms * plan.storm_size} joiners into rooms of "
                f"{plan.storm_size}, until all delivered (median of {plan.storm_repeats}), "
                f"{label}",
                relay=shown(RELAY) if RELAY in runs else "–",
                floor=shown(FLOOR) if FLOOR in runs else "–",
                site=shown(name),
                ratio=ratio(seconds(name), floor, relay),
                target=f"≤ {STORM_TARGET_SECONDS:g} s, 0 lost",
                result="ERROR" if failed(run) else verdict(passed),
            )
        )
    return rows


def chromium_rows(results: dict, plan) -> list[Row]:
    chromium = results.get("chromium")
    if chromium is None:
        return []
    row = Row("Chromium join time (bench/join_time.py), median", target="≤ 1.3× bare relay")
    if "relay_ms" in chromium and "site_ms" in chromium:
        relay = statistics.median(chromium["relay_ms"])
        site = statistics.median(chromium["site_ms"])
        multiple = times(site, relay)
        row.relay, row.site = seconds_or_ms(relay), seconds_or_ms(site)
        row.ratio = f"×{multiple:.3g} relay"
        row.result = verdict(multiple <= CHROMIUM_TARGET)
    else:
        row.site = chromium.get("missing") or chromium.get("error", "")[:80]
        row.result = "MISSING" if "missing" in chromium else "FAIL"
    return [row]


def sfu_room_summary(figures: dict) -> str:
    """One line for the sfu-room scenario (bench/sfu_room.py): the room it served, whose limit."""
    if "error" in figures:
        return f"sfu-room: {figures['error']}"
    largest = figures.get("largest_served")
    text = f"sfu-room: largest room served {largest or 'none'}; stopped: {figures['stopped']}"
    if figures.get("janus_cpu_per_forwarded_stream") is not None:
        text += (
            f"; Janus {figures['janus_cpu_per_forwarded_stream']:.2%} of a core per forwarded "
            f"video stream (about {figures['janus_streams_per_core']} streams per core)"
        )
    return text


def sfu_rows(results: dict, plan) -> list[Row]:
    """The media server's rows: the largest room (sfu-room), browsers mesh vs SFU."""
    rows = []
    room = results.get("sfu-room")
    if room is not None:
        row = Row(
            "SFU room (bench/sfu_room.py): largest room one Janus serves, aiortc clients "
            "publishing 640x360 at 30 fps and decoding everyone",
            target="each subscriber decodes ≥ 90% of each publisher's frames",
        )
        problem = failed(room)
        served = [step for step in room.get("steps", []) if step.get("served")]
        if problem:
            row.site, row.result = problem, "ERROR"
        elif not served:
            row.site, row.result = f"none: {room['stopped']}", "FAIL"
        else:
            top = served[-1]
            row.site = (
                f"{top['people']} people ({top['forwarded_video_streams']} streams): Janus "
                f"{top['janus_cpu']:.0%}, load {top['load_cpu']:.0%} of a core; "
                f"{room['janus_cpu_per_forwarded_stream']:.2%} of a core per stream"
            )
            row.result = {
                "load generator": "LOAD-BOUND",
                "room size": "ALL SEATS",
            }.get(room["limited_by"], f"{top['people'] + 1} FAILS")
        rows.append(row)
    browsers = results.get("sfu-browsers")
    if browsers is not None:
        people = browsers.get("people", plan.browsers_people)
        camera = browsers.get("camera", "")
        mesh = browsers.get("mesh", {})
        for mode in ("mesh", "sfu"):
            figures = browsers.get(mode)
            if figures is None and "error" not in browsers:
                continue
            row = Row(
                f"{people} Chromium processes in a call, {mode} ({camera}): median browser's "
                "CPU, video out"
            )
            if figures is None or failed(figures):
                row.site, row.result = failed(figures or browsers) or "–", "ERROR"
            elif "skipped" in figures:
                row.site, row.result = figures["skipped"][:80], "SKIPPED"
            else:
                row.site = (
                    f"{figures['cpu_median']:.0%} of a core, "
                    f"{figures['video_kbps_out_median'] / 1000:.2f} Mbit/s"
                    + (" (machine saturated)" if figures["saturated"] else "")
                )
                if mode == "sfu" and mesh and "cpu_median" in mesh:
                    cpu = times(figures["cpu_median"], mesh["cpu_median"])
                    kbps = times(figures["video_kbps_out_median"], mesh["video_kbps_out_median"])
                    row.ratio = f"CPU ×{cpu:.2g} mesh, bitrate ×{kbps:.2g} mesh"
            rows.append(row)
    return rows


def rows(results: dict, plan) -> list[Row]:
    return [
        *steady_rows(results, plan),
        *burst_rows(results, plan),
        *idle_rows(results, plan),
        *storm_rows(results, plan),
        *chromium_rows(results, plan),
        *sfu_rows(results, plan),
    ]


def table(rows: list[Row]) -> str:
    """Render rows as a Markdown table whose columns line up in a terminal too."""
    header = Row("measure", "bare relay", "daphne floor", "this site", "ratio", "target", "result")
    cells = [list(dataclasses.astuple(row)) for row in [header, *rows]]
    widths = [max(len(line[column]) for line in cells) for column in range(len(cells[0]))]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "| " + " | ".join("-" * width for width in widths) + " |"
    return "\n".join([line(cells[0]), separator, *(line(values) for values in cells[1:])])


def disturbance(figures: dict) -> float:
    """How disturbed a measurement was by other work on the machine: 1 or less is calm."""
    if "error" in figures:
        return 0.0
    return max(figures["others_cpu"] / CALM, figures.get("send_lag_p99_ms", 0) / LATE_MS)


def disturbed(figures: dict) -> str:
    others = figures.get("others_cpu")
    if others is None:
        return ""
    text = f"; other processes used {others:.2f} core"
    if figures.get("attempts", 1) > 1:
        text += f" (kept attempt {figures['attempt']} of {figures['attempts']})"
    return text


def summary(scenario: str, name: str, figures: dict) -> str:
    """One line saying what a run measured, printed as the bench goes."""
    if "error" in figures:
        return f"{scenario}, {name}: {figures['error']}"
    if scenario.startswith("steady"):
        return (
            f"{scenario}, {name}: p50 {seconds_or_ms(figures['p50_ms'])}, "
            f"p99 {seconds_or_ms(figures['p99_ms'])}, max {seconds_or_ms(figures['max_ms'])}, "
            f"{figures['lost']} lost of {figures['sent']}, server CPU "
            f"{figures['server_cpu']:.0%}, connect {figures['connect_seconds']:.1f} s, "
            f"sends late by {figures['send_lag_p99_ms']:.1f} ms at p99{disturbed(figures)}"
        )
    if scenario == "burst":
        fresh, after = figures.get(FRESH, {}), figures.get(AFTER_CHURN, {})
        return (
            f"burst, {name}: {rate(fresh.get('msgs_per_s', 0))} fresh, "
            f"{rate(after.get('msgs_per_s', 0))} after churn "
            f"(lost {fresh.get('lost')} / {after.get('lost')}){disturbed(figures)}"
        )
    if scenario == "idle":
        return (
            f"idle, {name}: {figures['kib_per_socket']:.1f} KiB per socket "
            f"({figures['rss_before_kib']} -> {figures['rss_after_kib']} KiB), "
            f"{figures['still_open']} of {figures['sockets']} still open"
        )
    if scenario == "storm":
        spread = ", ".join(f"{seconds:.2f}" for seconds in figures.get("seconds_all", []))
        return (
            f"storm, {name}: median {figures['seconds']:.2f} s (of {spread} s), "
            f"{figures['lost']} lost of {figures['signals']} each, "
            f"{figures['pairs_negotiated']} of {figures['pairs_expected']} pairs"
            f"{disturbed(figures)}"
        )
    return f"{scenario}, {name}: {figures}"


def notes(results: dict) -> list[str]:
    """What the servers' logs and the clients saw go wrong: errors, closes, losses."""
    found = []

    def look(where: str, figures: dict) -> None:
        if not isinstance(figures, dict):
            return
        if "error" in figures:
            found.append(f"{where}: {figures['error']}")
        for key in ("errors", "closed_by_server"):
            if figures.get(key):
                found.append(f"{where}: {key.replace('_', ' ')} {figures[key]}")
        if figures.get("lost"):
            found.append(f"{where}: {figures['lost']} lost")
        if figures.get("misrouted"):
            found.append(f"{where}: {figures['misrouted']} signals from the wrong peer")
        if figures.get("send_lag_p99_ms", 0) > LATE_MS:
            found.append(
                f"{where}: the load generator sent late by {figures['send_lag_p99_ms']:.0f} ms "
                "at p99 (it shares its core with whatever else runs here)"
            )
        if figures.get("others_cpu", 0) > CALM:
            tries = figures.get("attempts", 1)
            found.append(
                f"{where}: other processes used {figures['others_cpu']:.2f} of a core of the "
                "bench's meanwhile"
                + (f" (the least disturbed of {tries} attempts)" if tries > 1 else "")
            )
        log = figures.get("server_log")
        if log and log["lines"]:
            found.append(
                f"{where}: the server logged {log['lines']} lines, {log['tracebacks']} "
                f"tracebacks; most common: {'; '.join(log['most_common'])}"
            )

    for scenario in ("steady", "burst", "idle", "storm"):
        for key, runs in results.get(scenario, {}).items():
            if scenario == "steady":
                for name, figures in runs.items():
                    look(f"steady {key} sockets, {name}", figures)
            else:
                look(f"{scenario}, {key}", runs)
                for phase in BURST_PHASES:
                    if isinstance(runs, dict) and phase in runs:
                        look(f"{scenario} ({phase.replace('_', ' ')}), {key}", runs[phase])
    room = results.get("sfu-room")
    if room and room.get("limited_by") == "load generator":
        found.append(
            "sfu-room: the load generator saturated its core before Janus dropped frames: the "
            "limit found is this machine's, not Janus's; Janus's CPU per forwarded stream "
            f"({room.get('janus_cpu_per_forwarded_stream', math.nan):.2%} of a core) is the figure "
            "to extrapolate from"
        )
    if room:
        look("sfu-room", {key: room[key] for key in ("error", "server_log") if key in room})
    for mode, figures in (results.get("sfu-browsers") or {}).items():
        if isinstance(figures, dict) and figures.get("saturated"):
            found.append(
                f"sfu-browsers, {mode}: the machine was {figures['machine_busy']:.0%} busy over "
                "the window: each browser's CPU is its share of a saturated machine, and encoders "
                f"sent {', '.join(figures['sent_sizes'])}"
                + (
                    f" (limited by {', '.join(figures['quality_limited_by'])})"
                    if figures["quality_limited_by"]
                    else ""
                )
            )
    return found
