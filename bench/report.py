"""Turn a results JSON from ``bench.run`` into BENCHMARKS.md and PNG plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GOALS = {"connector_vs_naive": 20.0, "connector_vs_ceiling": 0.5, "connector_vs_raw": 0.9}


def _spread(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, n={s['n']})"


def _met(value: float, goal: float) -> str:
    return "yes" if value >= goal else "**no**"


def headline(sections: dict[str, Any]) -> list[str]:
    rows = ["| measurement | goal | median (min–max, n) | met |", "| --- | ---: | --- | --- |"]
    patches = sections.get("patches", {}).get("modes", {})
    for mode, per_kind in patches.items():
        for kind, r in per_kind.items():
            for ratio, label in (("connector_vs_naive", "vs naive consumer"), ("connector_vs_ceiling", "vs ceiling")):
                goal = GOALS[ratio]
                rows.append(f"| patches, {kind}, Qdrant {mode}: connector {label} | ≥ {goal:g}× | "
                            f"{_spread(r[ratio])}× | {_met(r[ratio]['median'], goal)} |")
    if "reembed" in sections:
        r = sections["reembed"]["connector_vs_raw"]
        rows.append(f"| re-embed: connector vs raw fastembed | ≥ 0.9× | {_spread(r)}× | {_met(r['median'], 0.9)} |")
    if "seed_claim" in sections:
        s = sections["seed_claim"]
        rows.append(f"| seed claim: request bytes, retrieve+upsert / scroll+update_vectors | > 1× | {s['ratio_request_bytes']}× | "
                    f"{_met(s['ratio_request_bytes'], 1.0)} |")
        rows.append(f"| seed claim: time, same ratio | > 1× | {s['ratio_time']}× | {_met(s['ratio_time'], 1.0)} |")
        rows.append(f"| seed claim: time without embedding | > 1× | {s['ratio_time_without_embedding']}× | "
                    f"{_met(s['ratio_time_without_embedding'], 1.0)} |")
    if "scale" in sections:
        r = sections["scale"]["two_vs_one"]
        rows.append(f"| scale-out: two workers vs one | > 1× | {_spread(r)}× | {_met(r['median'], 1.0)} |")
    if "backlog" in sections:
        b = sections["backlog"]
        first, last = b["rss_mib_at"]["10%"], b["rss_mib_at"]["99%"]
        rows.append(f"| backlog of {b['events']:,} events: RSS at 99% / RSS at 10% | ≈ 1× (bounded) | "
                    f"{last / first:.2f}× ({first:.0f} → {last:.0f} MiB, peak {b['peak_rss_mib']:.0f}) | "
                    f"{'yes' if last / first < 1.25 else '**no**'} |")
    return rows


def patches_table(section: dict[str, Any]) -> list[str]:
    events = ", ".join(f"{n:,} with Qdrant {mode}" for mode, n in section["events"].items())
    rows = [f"Events per workload: {events}; on {section['points']:,} points, windows of "
            f"{section['window_max_events']}; events/s, median (min–max).", "",
            "| Qdrant | workload | connector | naive | ceiling | vs naive | vs ceiling |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for mode, per_kind in section["modes"].items():
        for kind, r in per_kind.items():
            rows.append(f"| {mode} | {kind} | {_spread(r['connector'], 0)} | {_spread(r['naive'], 0)} | "
                        f"{_spread(r['ceiling'], 0)} | {r['connector_vs_naive']['median']:.2f}× | "
                        f"{r['connector_vs_ceiling']['median']:.2f}× |")
    return rows


def server_projection(section: dict[str, Any]) -> list[str]:
    """A model, not a measurement: add a network round trip per Qdrant request to the measured
    in-memory cost per event. The naive consumer makes one request per event; the connector
    three per full window (existence read, batch, read-back)."""
    memory = section["modes"].get("memory")
    if not memory:
        return []
    per_window = 3 / section["window_max_events"]
    rows = ["| round trip per request | " + " | ".join(f"{k}: connector / naive" for k in memory) + " |",
            "| ---: |" + " ---: |" * len(memory)]
    for rtt_ms in (0.5, 1.0, 2.0, 5.0):
        rtt = rtt_ms / 1000
        cells = []
        for r in memory.values():
            connector = 1 / (1 / r["connector"]["median"] + rtt * per_window)
            naive = 1 / (1 / r["naive"]["median"] + rtt)
            cells.append(f"{connector:,.0f} / {naive:,.0f} = {connector / naive:.1f}×")
        rows.append(f"| {rtt_ms} ms | " + " | ".join(cells) + " |")
    return rows


def profile_table(section: dict[str, Any]) -> list[str]:
    runs = {k: v for k, v in section.items() if isinstance(v, dict) and "microseconds_per_event" in v}
    stages = sorted({s for v in runs.values() for s in v["microseconds_per_event"]})
    rows = ["| stage (µs per event) | " + " | ".join(runs) + " |", "| --- |" + " ---: |" * len(runs)]
    for stage in stages:
        rows.append(f"| {stage} | " + " | ".join(f"{v['microseconds_per_event'].get(stage, 0):.0f}" for v in runs.values()) + " |")
    rows.append("| **total** | " + " | ".join(f"{sum(v['microseconds_per_event'].values()):.0f}" for v in runs.values()) + " |")
    return rows


def plot_windows(section: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for cell in section["cells"]:
        label = f"{cell['max_events']}/{cell['max_wait_seconds']}s"
        left.scatter(cell["p99_ms"], cell["events_per_second"]["median"], color="tab:blue")
        left.annotate(label, (cell["p99_ms"], cell["events_per_second"]["median"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")
    left.set_xlabel("p99 latency at a steady rate (ms)")
    left.set_ylabel("backlog throughput (events/s)")
    left.set_title("max events / max wait: throughput vs p99")
    waits = sorted({c["max_wait_seconds"] for c in section["cells"]})
    for wait in waits:
        cells = sorted((c for c in section["cells"] if c["max_wait_seconds"] == wait), key=lambda c: c["max_events"])
        right.plot([c["max_events"] for c in cells], [c["p50_ms"] for c in cells], marker="o", label=f"p50, wait {wait}s")
        right.plot([c["max_events"] for c in cells], [c["p99_ms"] for c in cells], marker="x", linestyle="--",
                   label=f"p99, wait {wait}s")
    right.set_xscale("log")
    right.set_xlabel("window max events")
    right.set_ylabel("latency (ms)")
    right.set_title("latency by window size")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pages(section: dict[str, Any], path: Path) -> None:
    cells = section["cells"]
    fig, axis = plt.subplots(figsize=(7, 4))
    sizes = [c["page_size"] for c in cells]
    axis.plot(sizes, [c["points_per_second"]["median"] for c in cells], marker="o", color="tab:blue")
    axis.set_xscale("log")
    axis.set_xlabel("scroll page size")
    axis.set_ylabel("export points/s", color="tab:blue")
    other = axis.twinx()
    if all("export_heap_peak_mib" in c for c in cells):
        other.plot(sizes, [c["export_heap_peak_mib"] for c in cells], marker="s", color="tab:red")
        other.set_ylabel("export's own heap peak (MiB)", color="tab:red")
        other.set_yscale("log")
    else:
        other.plot(sizes, [c["peak_rss_mib"]["median"] for c in cells], marker="s", color="tab:red")
        other.set_ylabel("peak RSS (MiB)", color="tab:red")
    axis.set_title(f"export of {section['points']:,} points by page size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_backlog(section: dict[str, Any], path: Path) -> None:
    samples = section["samples"]
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot([s["confirmed"] for s in samples], [s["rss_mib"] for s in samples], color="tab:red")
    axis.set_xlabel("events of the backlog confirmed")
    axis.set_ylabel("worker RSS (MiB)")
    axis.set_ylim(bottom=0)
    axis.set_title(f"catching up on {section['events']:,} events")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_patches(section: dict[str, Any], path: Path) -> None:
    labels, connector, naive, ceiling = [], [], [], []
    for mode, per_kind in section["modes"].items():
        for kind, r in per_kind.items():
            labels.append(f"{kind}\n{mode}")
            connector.append(r["connector"]["median"])
            naive.append(r["naive"]["median"])
            ceiling.append(r["ceiling"]["median"])
    fig, axis = plt.subplots(figsize=(9, 4))
    xs = range(len(labels))
    for offset, values, label in ((-0.27, naive, "naive"), (0.0, connector, "connector"), (0.27, ceiling, "ceiling")):
        axis.bar([x + offset for x in xs], values, width=0.27, label=label)
    axis.set_xticks(list(xs), labels, fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("events/s (log)")
    axis.set_title("payload patches: connector, naive consumer, ceiling")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTS = {"patches": plot_patches, "windows": plot_windows, "pages": plot_pages, "backlog": plot_backlog}


def write_report(results: dict[str, Any], report: Path, plots: Path) -> None:
    plots.mkdir(parents=True, exist_ok=True)
    sections = results["sections"]
    m = results["machine"]
    images = {}
    for name, plot in PLOTS.items():
        if name in sections:
            target = plots / f"{name}.png"
            plot(sections[name], target)
            images[name] = os.path.relpath(target, report.parent)
    lines = [
        "# Benchmarks", "",
        f"Generated by `python -m bench.run --size {results['size']}` on {results['started']} "
        f"(raw numbers: `bench/results/`). Every headline figure is a ratio of two things measured "
        f"side by side in the same run, repeated {results['repeats']}×: median (min–max, n). "
        "Nothing here is a test and nothing in the test suite asserts on time.", "",
        f"**Machine:** {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, no GPU; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {m['kafka']}.", "",
        f"**Qdrant:** {m['qdrant']}: `memory` is `location=':memory:'`, `disk` is a storage folder (SQLite, one "
        "commit per point written). There is no network and no server-side batching, so a request costs little "
        "and a point written costs a lot: the opposite of a server, where each request pays a round trip and a "
        "batch of points is one WAL append. Ratios against a naive consumer are therefore far smaller here than "
        "they would be against a server; ratios against the ceiling show the connector's own overhead.", "",
        "## Headline ratios", "", *headline(sections), "",
    ]
    if "patches" in sections:
        lines += ["## 1. Payload-patch throughput", "",
                  "connector: the Faust app in this process through the real broker (windows, coalescing, existence "
                  "screening, read-back verification, verification events). naive: an aiokafka consumer sending one "
                  "`batch_update_points` request with one operation per event, `wait=true`. ceiling: the same "
                  "operations, parsed and grouped beforehand (not timed), sent straight to Qdrant in window-sized "
                  "`batch_update_points` calls. Fresh identical collections for each.", "",
                  *patches_table(sections["patches"]), "", f"![patches]({images['patches']})", "",
                  "**Projection to a server (a model, not a measurement).** Local mode has no network. A server "
                  "adds a round trip to every request, which the naive consumer pays per event and the connector "
                  "per window (3 requests per full window). Adding that to the in-memory cost per event measured "
                  "above gives, in events/s:", "", *server_projection(sections["patches"]), ""]
    if "reembed" in sections:
        r = sections["reembed"]
        lines += ["## 2. Re-embed throughput", "",
                  f"{r['events']:,} re-embed events (inline texts, {r['model']}, windows of {r['window_max_events']}, "
                  f"Qdrant {r['qdrant']}) against raw fastembed embedding the same texts in window-sized calls in one "
                  "process, alternating.", "",
                  "| | texts/s |", "| --- | ---: |",
                  f"| connector | {_spread(r['connector'], 1)} |", f"| raw fastembed | {_spread(r['raw_fastembed'], 1)} |",
                  f"| ratio | {_spread(r['connector_vs_raw'])}× |", ""]
    if "seed_claim" in sections:
        s = sections["seed_claim"]
        a, b = s["scroll_update_vectors"], s["retrieve_upsert"]
        lines += ["## 3. The seed's claim: scroll → update_vectors vs retrieve → embed → upsert", "",
                  f"{s['points']:,} points with {s['payload_bytes']:,}-byte payloads, Qdrant {s['qdrant']}; "
                  "bytes are the JSON request and response bodies the REST client would send and receive.", "",
                  "| | scroll + update_vectors | retrieve + upsert | ratio |", "| --- | ---: | ---: | ---: |",
                  f"| request bytes | {a['request_bytes']:,} | {b['request_bytes']:,} | {s['ratio_request_bytes']}× |",
                  f"| request + response bytes | {a['request_bytes'] + a['response_bytes']:,} | "
                  f"{b['request_bytes'] + b['response_bytes']:,} | {s['ratio_network_bytes']}× |",
                  f"| seconds (median) | {a['median_seconds']} | {b['median_seconds']} | {s['ratio_time']}× |",
                  f"| seconds without embedding | {a['median_seconds_without_embedding']} | "
                  f"{b['median_seconds_without_embedding']} | {s['ratio_time_without_embedding']}× |", ""]
    if "windows" in sections:
        w = sections["windows"]
        lines += ["## 4. Window settings", "",
                  f"Backlog of {w['backlog_events']:,} distinct patches for throughput, then latency from the producer's "
                  "send to the verification event's arrival at a steady rate; Qdrant in memory. A window that "
                  "cannot fill closes after max wait, so on a short backlog a large window with a long wait loses "
                  "throughput to its last, partial window (2,000 events / 2 s on a 5,000-event backlog spends ~2 s "
                  "waiting); on a steady stream the same wait shows as latency.", "",
                  "| max events | max wait (s) | events/s | p50 (ms) | p99 (ms) |", "| ---: | ---: | ---: | ---: | ---: |"]
        for c in w["cells"]:
            lines.append(f"| {c['max_events']} | {c['max_wait_seconds']} | {_spread(c['events_per_second'], 0)} | "
                         f"{c['p50_ms']} | {c['p99_ms']} |")
        lines += ["", f"![windows]({images['windows']})", ""]
    if "pages" in sections:
        p = sections["pages"]
        lines += ["## 5. Scroll page size (export)", "",
                  f"{p['points']:,} points ({p['vector']}, {p['payload_bytes']}-byte payloads), Qdrant {p['qdrant']}; each "
                  f"export is its own process; peak RSS from `wait4`. Opening the collection alone peaks at "
                  f"{p['baseline_open_only_mib']} MiB (local mode loads it into memory) and takes "
                  f"{p['baseline_open_only_seconds']} s, which is subtracted from the export's time. The export's own "
                  "memory is its peak Python heap under `tracemalloc`, traced from after the collection is open.", "",
                  "| page size | points/s | peak RSS (MiB) | RSS above opening (MiB) | export's own heap peak (MiB) |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
        for c in p["cells"]:
            lines.append(f"| {c['page_size']} | {_spread(c['points_per_second'], 0)} | {_spread(c['peak_rss_mib'], 0)} | "
                         f"{c['above_baseline_mib']} | {c.get('export_heap_peak_mib', '')} |")
        lines += ["", f"![pages]({images['pages']})", ""]
    if "backlog" in sections:
        b = sections["backlog"]
        lines += ["## 6. Memory under backlog", "",
                  f"{b['events']:,} events produced first ({b['produce_seconds']} s), then one worker process caught up "
                  f"in {b['catch_up_seconds']} s ({b['events_per_second']:,.0f} events/s; identical patches on 100 points, "
                  f"Qdrant on disk). Peak RSS {b['peak_rss_mib']} MiB.", "",
                  "| backlog confirmed | " + " | ".join(b["rss_mib_at"]) + " |", "| --- |" + " ---: |" * len(b["rss_mib_at"]),
                  "| worker RSS (MiB) | " + " | ".join(str(v) for v in b["rss_mib_at"].values()) + " |", "",
                  f"![backlog]({images['backlog']})", ""]
    if "scale" in sections:
        s = sections["scale"]
        lines += ["## 7. Scale-out", "",
                  f"{s['events']:,} distinct patches on {s['partitions']} partitions; worker processes in one consumer "
                  f"group, Qdrant {s['qdrant']} (local mode allows one process per folder; the folder stands in for "
                  "a server both would share).", "",
                  "| | events/s |", "| --- | ---: |", f"| one worker | {_spread(s['one_worker'], 0)} |",
                  f"| two workers | {_spread(s['two_workers'], 0)} |", f"| ratio | {_spread(s['two_vs_one'])}× |", ""]
    if "profile" in sections:
        lines += ["## Where the time goes", "",
                  "pyinstrument on the window processor in this process (no Kafka: consuming and publishing are in the "
                  "end-to-end numbers above), 500-event windows; each sample goes to the innermost stage on its stack. "
                  "Embedding runs in the embedding thread and shows as the time the window awaits it.", "",
                  *profile_table(sections["profile"]), ""]
    lines += ["## Sections' run time", "", "| section | seconds |", "| --- | ---: |",
              *[f"| {name} | {s.get('seconds', '')} |" for name, s in sections.items()], ""]
    report.write_text("\n".join(lines))
