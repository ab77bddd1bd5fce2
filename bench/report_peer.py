"""The peer section of BENCHMARKS.md: upserts beside the official Qdrant Kafka sink (bench/peer.py)."""

from __future__ import annotations

from typing import Any

GOAL = 1.5  # issue 12: upserts at least 1.5x the official sink, every guarantee on
LABEL = {"rest": "REST", "grpc": "gRPC"}


def _spread(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, n={s['n']})"


def headline_rows(section: dict[str, Any]) -> list[str]:
    rows = []
    for name, t in section["targets"].items():
        r = t["connector_vs_sink"]
        met = "yes" if r["median"] >= GOAL else "**no**"
        rows.append(f"| upserts, server {LABEL[name]}: connector vs the official Qdrant sink (gRPC) | ≥ {GOAL:g}× | "
                    f"{_spread(r)}× | {met} |")
    return rows


def _run_note(section: dict[str, Any], cores: int) -> str:
    stamps = {t["run"]["started"]: t["run"] for t in section["targets"].values() if "run" in t}
    notes = []
    for started, run in sorted(stamps.items()):
        share = f"; other processes used {run['other_cpu_share']:.0%} of the cores meanwhile" \
            if "other_cpu_share" in run else ""
        notes.append(f"{started}, {run['repeats']} repeat{'s' if run['repeats'] != 1 else ''}{share}")
    return (f"Measured {'; '.join(notes)}, on {cores} cores shared by the broker, the server, the contender and "
            "the bench: absolute events/s are noisy; the ratios, taken within each repeat, are what to read.")


def section_lines(section: dict[str, Any], cores: int) -> list[str]:
    s = section
    lines = [
        "## Peer: the official Qdrant Kafka sink", "",
        (f"{s['events']:,} upserts of {s['dimensions']}-d vectors (cosine) on {s['points']:,} points, each point "
        f"written {s['events'] // s['points']} times; the same keys on {s['partitions']} partitions in two topics, "
        "produced in full before anything consumes: the sink's JSON values (`collection_name`, `id`, `vector`, "
        "`payload`) and the connector's `upsert` events. In each repeat, each on a freshly created collection of "
        "the run's Qdrant server, the order rotating from one repeat to the next: "
        f"**sink**: {s['sink']}, upserts without `wait`; "
        "**connector**: a worker process with default settings, every guarantee on (`wait=true`, read-back "
        "verification, a verification event per window, windows of 500 events); "
        "**unverified**: the same worker with `QCC_VERIFY_AFTER_APPLY=false` (no read-back, the one guarantee "
        "that can be turned off); "
        "**naive**: an aiokafka consumer sending one upsert per event with `wait=true`; "
        f"**ceiling**: the points sent straight to Qdrant in {s['batch']}-point upserts with `wait=true`, no Kafka."),
        "",
        ("The clock: a REST client counts the collection's points every 50 ms. *Start-up* is process (or consumer) "
        "start to the first point counted: the first batch consumed and applied. The run is *done* when every "
        "point's last write (payload `last: true`, indexed) counts, and for the connector when every offset is "
        "confirmed by a verification event. Events/s: the events applied after the first count over the time from "
        "it to done; a median (min–max, n) over the repeats; ratios per repeat."),
        "",
        _run_note(s, cores),
        "",
        ("| connector, naive, ceiling over | official sink (gRPC) | connector | naive | ceiling | connector / sink | "
         "connector / ceiling | sink / ceiling |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in s["targets"].items():
        lines.append(f"| {LABEL[name]} | {_spread(t['sink'], 0)} | {_spread(t['connector'], 0)} | "
                     f"{_spread(t['naive'], 0)} | {_spread(t['ceiling'], 0)} | {_spread(t['connector_vs_sink'])}× | "
                     f"{_spread(t['connector_vs_ceiling'])}× | {_spread(t['sink_vs_ceiling'])}× |")
    if all("unverified" in t for t in s["targets"].values()):
        lines += ["", ("What the read-back costs: the connector beside the same worker without it "
                       "(`QCC_VERIFY_AFTER_APPLY=false`), in the same repeats:"), "",
                  "| over | unverified | unverified / sink | connector / unverified |", "| --- | ---: | ---: | ---: |"]
        for name, t in s["targets"].items():
            lines.append(f"| {LABEL[name]} | {_spread(t['unverified'], 0)} | {_spread(t['unverified_vs_sink'])}× | "
                         f"{_spread(t['connector_vs_unverified'])}× |")
    lines += [
        "",
        ("Start-up (seconds, median) and CPU per 1,000 events applied (ms, median; the contender's process, and the "
         "Qdrant server, in the same span):"),
        "",
        ("| over | start-up: sink | connector | naive | CPU: sink / server | connector / server | naive / server | "
         "ceiling / server |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, t in s["targets"].items():
        up, cpu = t["startup_seconds"], t["cpu_ms_per_1000_events"]
        cells = " | ".join(f"{cpu[w]['own']:.0f} / {cpu[w]['server']:.0f}"
                           for w in ("sink", "connector", "naive", "ceiling"))
        lines.append(f"| {LABEL[name]} | {up['sink']['median']:.1f} | {up['connector']['median']:.1f} | "
                     f"{up['naive']['median']:.1f} | {cells} |")
    lines += ["", ("The connector's windows, from its verification events (medians over the repeats). Applying and "
                   "reading back are the window's waits on Qdrant, the client's encoding and decoding included; "
                   "besides them the runner validates and plans (an upsert-only window reads nothing before "
                   "applying) and publishes the verification event, while the agent fetches and parses the next "
                   "window."), "",
              ("| over | windows | events per window | applying (`wait=true`) | reading back | not verified | "
               "dead letters |"), "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, t in s["targets"].items():
        w = t["connector_windows"]
        lines.append(f"| {LABEL[name]} | {w['windows']:.0f} | {w['events_per_window']:.0f} | "
                     f"{w['apply_seconds']:.1f} s ({w['apply_share']:.0%} of the time) | "
                     f"{w['verify_seconds']:.1f} s ({w['verify_share']:.0%}) | {w['not_verified']:.0f} | "
                     f"{w['dead_letters']:.0f} |")
    return [*lines, ""]
