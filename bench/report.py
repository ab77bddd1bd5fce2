"""Turn a results JSON from ``bench.run`` into BENCHMARKS.md and PNG plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench import report_peer
from connector.settings import ChunkedField

CPU_LABEL = "connector CPU ms per 1,000 events (lower is better)"  # bench/commits.py's per-commit CPU rows

GOALS = {"connector_vs_naive": 20.0, "connector_vs_ceiling": 0.5, "connector_vs_raw": 0.9}


TARGET_LABEL = {"memory": "local memory", "disk": "local disk", "rest": "server REST", "grpc": "server gRPC"}


def _spread(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, n={s['n']})"


def _met(value: float, goal: float) -> str:
    return "yes" if value >= goal else "**no**"


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": median, "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float] | None:
    """a / b per repeat (repeat i of both ran side by side), or None without the raw values."""
    if "values" not in a or "values" not in b or len(a["values"]) != len(b["values"]):
        return None
    return _summary([x / y for x, y in zip(a["values"], b["values"], strict=True)])


def verdict(speedup: dict[str, float] | None) -> str:
    """Which protocol is faster, by gRPC's speed-up over REST: only when every repeat agrees."""
    if speedup is None:
        return ""
    if speedup["min"] > 1:
        return "gRPC"
    if speedup["max"] < 1:
        return "REST"
    return "neither (spread spans 1)"


def _targets(sections: dict[str, Any], name: str) -> dict[str, Any]:
    return sections.get(name, {}).get("targets", {})


def headline(sections: dict[str, Any]) -> list[str]:
    rows = ["| measurement | goal | median (min–max, n) | met |", "| --- | ---: | --- | --- |"]
    for target, t in _targets(sections, "patches").items():
        for kind, r in t["workloads"].items():
            for ratio, label in (("connector_vs_naive", "vs naive consumer"), ("connector_vs_ceiling", "vs ceiling")):
                goal = GOALS[ratio]
                rows.append(f"| patches, {kind}, {TARGET_LABEL[target]}: connector {label} | ≥ {goal:g}× | "
                            f"{_spread(r[ratio])}× | {_met(r[ratio]['median'], goal)} |")
    for target, t in _targets(sections, "reembed").items():
        r = t["connector_vs_raw"]
        rows.append(f"| re-embed, {TARGET_LABEL[target]}: connector vs raw fastembed | ≥ 0.9× | {_spread(r)}× | "
                    f"{_met(r['median'], 0.9)} |")
    for target, t in _targets(sections, "windows").items():
        ratios = [c["p99_ms"] / c["p99_bound_ms"] for c in t["cells"] if "p99_bound_ms" in c]
        if ratios:
            r = _summary(ratios)
            rows.append(f"| windows, {TARGET_LABEL[target]}: p99 at half the backlog rate / (max wait + 2 × one "
                        f"batch), one value per setting | ≤ 1× each | {_spread(r)}× | "
                        f"{'yes' if r['max'] <= 1 else '**no**'} |")
    if "seed_claim" in sections:
        s = sections["seed_claim"]
        rows.append(
            "| seed claim: request bytes, retrieve+upsert / scroll+update_vectors | > 1× | "
            f"{s['ratio_request_bytes']}× | {_met(s['ratio_request_bytes'], 1.0)} |"
        )
        rows.append(f"| seed claim: time, same ratio | > 1× | {s['ratio_time']}× | {_met(s['ratio_time'], 1.0)} |")
        rows.append(f"| seed claim: time without embedding | > 1× | {s['ratio_time_without_embedding']}× | "
                    f"{_met(s['ratio_time_without_embedding'], 1.0)} |")
    for target, t in _targets(sections, "scale").items():
        r = t["two_vs_one"]
        rows.append(
            f"| scale-out, {TARGET_LABEL[target]}: two workers vs one | > 1× | {_spread(r)}× | "
            f"{_met(r['median'], 1.0)} |"
        )
    if "backlog" in sections:
        b = sections["backlog"]
        first, last = b["rss_mib_at"]["10%"], b["rss_mib_at"]["99%"]
        rows.append(f"| backlog of {b['events']:,} events: RSS at 99% / RSS at 10% | ≈ 1× (bounded) | "
                    f"{last / first:.2f}× ({first:.0f} → {last:.0f} MiB, peak {b['peak_rss_mib']:.0f}) | "
                    f"{'yes' if last / first < 1.25 else '**no**'} |")
    if "peer" in sections:
        rows += report_peer.headline_rows(sections["peer"])
    if "documents" in sections:
        rows += documents_headline(sections["documents"])
    return rows


def documents_headline(d: dict[str, Any]) -> list[str]:
    """Issue 33's three goals, each beside what it is compared with in the same run (one run: n=1)."""
    i, e, r = d["ingestion"], d["edit_pass"], d["retrieval"]
    of = f"{d['documents']} documents"
    return [
        (f"| chunked documents ({i.get('documents', d['documents'])} of the {of}), local memory: connector vs raw "
         "fastembed over the same chunks | ≥ 0.9× | "
         f"{i['connector_vs_raw']:.2f}× ({i['connector']:.3f} vs {i['raw_fastembed']:.3f} documents/s, n=1) | "
         f"{_met(i['connector_vs_raw'], 0.9)} |"),
        (f"| chunked documents ({of}): embeddings per edited paragraph (re-embedding every chunk: "
         f"{e['re_embed_everything']['mean']:.1f}) | ≤ 3 | {e['connector_embedded']['mean']:.2f} (p90 "
         f"{e['connector_embedded']['p90']}, max {e['connector_embedded']['max']}) | "
         f"{'yes' if e['connector_embedded']['mean'] <= 3 else '**no**'} |"),
        (f"| chunked documents ({of}): a sentence from a document's second half finds it, top hit (without "
         f"chunking: {r['whole_text']['top1_share']:.1%}) | ≥ 90% | {r['chunked']['top1_share']:.1%} of "
         f"{r['queries']} | {_met(r['chunked']['top1_share'], 0.9)} |"),
    ]


def _default(d: dict[str, Any]) -> str:
    """Whether the run's chunk size is today's default (a results file can predate a change of it)."""
    today = ChunkedField(text_field="body")
    if (d["max_tokens"], d["overlap_tokens"]) == (today.max_tokens, today.overlap_tokens):
        return ", the default"
    return f"; the default then, {today.max_tokens}/{today.overlap_tokens} now"


def documents_lines(d: dict[str, Any]) -> list[str]:
    """Section 8: chunked documents on the real-prose corpus (bench/documents.py)."""
    c, i, e, r = d["corpus"], d["ingestion"], d["edit_pass"], d["retrieval"]
    cu, ru = i["connector_use"], i["raw_use"]
    return [
        "## 8. Chunked documents", "",
        (f"The corpus (bench/corpus.py): {c['documents']} documents of real prose installed on this machine "
         f"(module docstrings of the standard library and installed packages, the packages' own docs and long "
         f"descriptions), median {c['median_words']:,} words, {c['words']:,} words in all. Measured here on "
         f"{d['documents']} of them (every k-th by name; median {d['words']['median']:,} words, "
         f"{d['words']['total']:,} in all): {d['chunks']['total']:,} chunks of at most {d['max_tokens']} tokens "
         f"with {d['overlap_tokens']} of overlap (median {d['chunks']['per_document_median']} a document), "
         f"{d['model']} on one onnxruntime thread, {d['qdrant']}, windows of {d['window_max_events']} documents. "
         "One run: each figure is n=1."), "",
        ("**Ingestion** (one upsert per document, through the broker, chunked, embedded, written and verified)"
         + _ingestion_subset(d) + ":"), "",
        "| | documents/s | chunks/s | seconds | CPU: this run / other processes |",
        "| --- | ---: | ---: | ---: | --- |",
        (f"| connector | {i['connector']:.3f} | {i['chunks_per_second']['connector']:.2f} | {i['connector_seconds']} "
         f"| {cu['own_cpu_share']:.0%} / {cu['other_cpu_share']:.0%} |"),
        (f"| raw fastembed, same chunks, same groups (a process of its own, run first) | {i['raw_fastembed']:.3f} | "
         f"{i['chunks_per_second']['raw_fastembed']:.2f} | {i['raw_seconds']} | {ru['own_cpu_share']:.0%} / "
         f"{ru['other_cpu_share']:.0%} |"),
        (f"| raw fastembed with the chunking timed too | {i['raw_chunk_and_embed']:.3f} | | "
         f"{round(i['raw_seconds'] + i['chunking_seconds'], 1)} | |"), "",
        (f"Connector / raw fastembed: **{i['connector_vs_raw']:.2f}×**; against raw fastembed that also chunks "
         f"({i['chunking_seconds']} s of chunking in this process): {i['connector_vs_raw_with_chunking']:.2f}×."), "",
        (f"**Edit pass** (one paragraph of each of the {e['documents']} documents gets a sentence at its end; the "
         "whole new text is upserted): embeddings the connector performed, from its verification events "
         "(`documents[].embedded`), beside re-embedding every chunk of each edited document (Airbyte's way: "
         "the chunks of the new text, counted by the same chunker):"), "",
        "| | embeddings | per edited paragraph: mean | median | p90 | max |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        (f"| connector (only changed chunks) | {e['connector_embedded']['total']:,} | "
         f"{e['connector_embedded']['mean']:.2f} | {e['connector_embedded']['median']} | "
         f"{e['connector_embedded']['p90']} | {e['connector_embedded']['max']} |"),
        (f"| re-embed every chunk | {e['re_embed_everything']['total']:,} | {e['re_embed_everything']['mean']:.2f} | "
         f"{e['re_embed_everything']['median']} | | {e['re_embed_everything']['max']} |"), "",
        (f"{e['connector_reused']:,} chunks kept their vector, {e['deleted']} were deleted; windows not verified: "
         f"{e['not_verified']}. Embeddings per document: "
         + ", ".join(f"{k}: {v}" for k, v in e["embedded_histogram"].items()) + "." + _predicted(e)), "",
        (f"**Retrieval** ({r['queries']} sentences, each from the second half of one of the {r['documents']} "
         "documents and found in no other; a plain Qdrant search, grouped by `_chunk.document_id` over the chunks; "
         "without chunking, one point per document embedded from its whole text, of which the model reads the "
         "first 256 tokens):"), "",
        "| | top hit is the source document | source in the top 5 |", "| --- | ---: | ---: |",
        (f"| chunked, {d['max_tokens']} tokens, overlap {d['overlap_tokens']} (through the connector{_default(d)}) | "
         f"{r['chunked']['top1_share']:.1%} | "
         f"{r['chunked']['top5_share']:.1%} |"),
        *_hybrid_rows(d),
        *[f"| chunked, {o['max_tokens']} tokens, overlap {o['overlap_tokens']} ({o['chunks']:,} chunks, embedded "
          f"directly{_edit_cost(o)}) | {o['top1_share']:.1%} | {o['top5_share']:.1%} |"
          for o in r.get("other_settings", [])],
        (f"| without chunking (whole text, first window) | {r['whole_text']['top1_share']:.1%} | "
         f"{r['whole_text']['top5_share']:.1%} |"), "",
        (f"Of the {len(r['misses'])} misses with chunking, {r['misses_same_package']} went to a document of the same "
         f"package or module family, {sum(m['in_top5'] for m in r['misses'])} had the source in the top 5."), "",
    ]


HYBRID_LABELS = {"dense": "the dense vector alone", "bm25": "the BM25 vector alone",
                 "fused (RRF)": "both fused by reciprocal rank (RRF)",
                 "fused (DBSF)": "both fused by score distribution (DBSF), as the README searches"}


def _hybrid_rows(d: dict[str, Any]) -> list[str]:
    """The connector's chunk points, both vectors, copied to a server and searched four ways (bench/documents.py)."""
    hybrid = d["retrieval"].get("hybrid")
    if hybrid is None:
        return []
    if "skipped" in hybrid:
        return [f"| chunked, dense and BM25: not measured ({hybrid['skipped']}) | | |"]
    return [f"| chunked, {d['max_tokens']}/{d['overlap_tokens']}, the connector's points on a server (exact search): "
            f"{HYBRID_LABELS.get(name, name)} | {s['top1_share']:.1%} | {s['top5_share']:.1%} |"
            for name, s in hybrid["results"].items()]


def _edit_cost(other: dict[str, Any]) -> str:
    """The edit pass at another chunk setting, counted from the chunk texts (bench/documents.py)."""
    e = other.get("edit_pass")
    return "" if e is None else (f"; its edit pass would embed {e['mean']:.2f} chunks per edited paragraph, p90 "
                                 f"{e['p90']}, max {e['max']}")


def _predicted(e: dict[str, Any]) -> str:
    """Does the connector's count of embeddings equal the count from the chunk texts?"""
    p = e.get("predicted_by_chunk_texts")
    if p is None:
        return ""
    return (f" Counted from the chunk texts (a new chunk whose text no old chunk has), the edit pass needs "
            f"{p['total']:,} embeddings; the connector's count differs in {p['documents_differing']} documents.")


def _ingestion_subset(d: dict[str, Any]) -> str:
    """Which documents the ingestion ratio was taken on, when not all (bench/documents.py, RATIO_DOCUMENTS)."""
    i = d["ingestion"]
    if i.get("documents", d["documents"]) == d["documents"]:
        return ""
    rest = i["rest"]
    return (f", on {i['documents']} of the {d['documents']} documents spread over the sample ({i['chunks']:,} "
            f"chunks), each side alone; the other {rest['documents']} were ingested afterwards in "
            f"{rest['seconds']:,} s, beside {rest['beside']}")


def patches_table(section: dict[str, Any]) -> list[str]:
    events = ", ".join(f"{t['events']:,} on {TARGET_LABEL[name]}" for name, t in section["targets"].items())
    rows = [(f"Events per workload: {events}; on {section['points']:,} points, windows of "
             f"{section['window_max_events']}; events/s, median (min–max, n)."), "",
            "| Qdrant | workload | connector | naive | ceiling | vs naive | vs ceiling |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, t in section["targets"].items():
        for kind, r in t["workloads"].items():
            rows.append(f"| {TARGET_LABEL[name]} | {kind} | {_spread(r['connector'], 0)} | {_spread(r['naive'], 0)} | "
                        f"{_spread(r['ceiling'], 0)} | {_spread(r['connector_vs_naive'])}× | "
                        f"{_spread(r['connector_vs_ceiling'])}× |")
    return rows + patches_cpu_table(section)


def patches_cpu_table(section: dict[str, Any]) -> list[str]:
    """CPU per 1,000 events of the connector and the ceiling, and of the server meanwhile (runs that measured it)."""
    measured = [(name, kind, r["cpu_ms_per_1000"]) for name, t in section["targets"].items()
                for kind, r in t["workloads"].items() if "cpu_ms_per_1000" in r]
    if not measured:
        return []
    rows = ["", ("CPU per 1,000 events (ms, median): this process while the connector ran (the connector, and "
                 "producing its events to the broker) or while the ceiling sent its batches, and the Qdrant server "
                 "meanwhile."), "",
            "| Qdrant | workload | connector | server (connector) | ceiling | server (ceiling) |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, kind, cpu in measured:
        cells = [f"{cpu[key]['median']:.0f}" if key in cpu else "–"
                 for key in ("connector_own", "connector_server", "ceiling_own", "ceiling_server")]
        rows.append(f"| {TARGET_LABEL[name]} | {kind} | {' | '.join(cells)} |")
    return rows


def protocol_rows(sections: dict[str, Any]) -> list[tuple[str, dict[str, float] | None]]:
    """gRPC's speed-up over REST for every measurement made on both: > 1 means gRPC was faster."""
    out: list[tuple[str, dict[str, float] | None]] = []
    p = _targets(sections, "patches")
    if "rest" in p and "grpc" in p:
        for kind in p["grpc"]["workloads"]:
            g, r = p["grpc"]["workloads"][kind], p["rest"]["workloads"].get(kind)
            if r is not None:
                out.extend((f"patches, {kind}: {who} events/s", paired(g[who], r[who]))
                           for who in ("connector", "naive", "ceiling"))
    e = _targets(sections, "reembed")
    if "rest" in e and "grpc" in e:
        out.append(("re-embed: connector texts/s", paired(e["grpc"]["connector"], e["rest"]["connector"])))
    w = _targets(sections, "windows")
    if "rest" in w and "grpc" in w:
        cells = list(zip(w["grpc"]["cells"], w["rest"]["cells"], strict=True))
        # one value per window setting: its throughput median, and its latencies (REST / gRPC: > 1 is gRPC quicker)
        out.append(("windows: backlog events/s, one value per setting",
                    _summary([g["events_per_second"]["median"] / r["events_per_second"]["median"] for g, r in cells])))
        out.extend((f"windows: {q[:3]} latency, one value per setting",
                    _summary([r[q] / g[q] for g, r in cells if g[q] > 0])) for q in ("p50_ms", "p99_ms"))
    s = _targets(sections, "scale")
    if "rest" in s and "grpc" in s:
        out.extend((f"scale-out: {who.replace('_', ' ')} events/s", paired(s["grpc"][who], s["rest"][who]))
                   for who in ("one_worker", "two_workers"))
    return out


def protocol_summary(sections: dict[str, Any]) -> list[str]:
    """The table in one sentence per outcome."""
    by: dict[str, list[str]] = {}
    for label, speedup in protocol_rows(sections):
        by.setdefault(verdict(speedup) or "n/a", []).append(label)
    lines = []
    for outcome, text in (("gRPC", "gRPC was faster in every repeat"), ("REST", "REST was faster in every repeat"),
                          ("neither (spread spans 1)", "Neither won every repeat")):
        if outcome in by:
            lines.append(f"{text}: {'; '.join(by[outcome])}.")
    return [" ".join(lines), ""] if lines else []


def protocol_table(sections: dict[str, Any]) -> list[str]:
    rows = ["| measurement | gRPC speed-up over REST: median (min–max, n) | faster |", "| --- | --- | --- |"]
    for label, speedup in protocol_rows(sections):
        rows.append(f"| {label} | {_spread(speedup) + '×' if speedup else 'n/a'} | {verdict(speedup)} |")
    return rows


def commits_table(section: dict[str, Any]) -> list[str]:
    """Two commits' headline ratios, each commit's bench run in turns (bench/commits.py)."""
    before, after = section["commits"]["before"], section["commits"]["after"]
    sections = ", ".join(o.split("=", 1)[1] for o in section["options"] if o.startswith("--only="))
    rows = [f"## Before and after a change: {sections}", "",
            (f"`python -m bench.commits` ran each commit's own bench ({' '.join(section['options'])}, one repeat a "
             f"round), {section['rounds']} rounds taking turns, started {section['started']}, "
             f"{section['seconds']:.0f} s; "
             f"other processes used up to {section.get('other_cpu_share_max', 0):.0%} of the cores' time in a section. "
             f"Before: `{before['sha'][:10]}` ({before['subject']}); after: `{after['sha'][:10]}` "
             f"({after['subject']}). Each value is a ratio measured side by side within one run; the last column "
             "divides the medians; the CPU rows are the connector's own process, where lower is better."), "",
            "| ratio | before | after | after / before |", "| --- | --- | --- | ---: |"]
    for label, sides in section["ratios"].items():
        if "before" in sides and "after" in sides:
            change = sides["after"]["median"] / sides["before"]["median"]
            unit = " ms" if label.endswith(CPU_LABEL) else "×"
            before_, after_ = _spread(sides["before"]) + unit, _spread(sides["after"]) + unit
            rows.append(f"| {label} | {before_} | {after_} | {change:.2f} |")
    return [*rows, ""]


def direct_table(section: dict[str, Any]) -> list[str]:
    """Two commits' connectors measured directly, in turns on one broker and server (bench/direct.py)."""
    before, after = section["commits"]["before"], section["commits"]["after"]
    sizes = ", ".join(f"{workload} {n:,}" for workload, n in section["events"].items())
    rows = ["## Before and after a change, measured directly", "",
            (f"`python -m bench.commits --direct` ran each commit's own connector on one long workload a turn "
             f"(events: {sizes}), on one broker and one Qdrant server, {section['rounds']} rounds taking turns, "
             f"started {section['started']}, {section['seconds']:.0f} s. Before: `{before['sha'][:10]}` "
             f"({before['subject']}); after: `{after['sha'][:10]}` ({after['subject']}). Rates in events a "
             "second (higher is better), CPU in ms of the connector's process per 1,000 events (lower is "
             "better); the ratio columns divide the medians."), "",
            ("| workload, Qdrant | rate before | rate after | after / before | CPU before | CPU after "
             "| after / before |"),
            "| --- | --- | --- | ---: | --- | --- | ---: |"]
    for label, sides in section["measured"].items():
        if "before" in sides and "after" in sides:
            b, a = sides["before"], sides["after"]
            rows.append(f"| {label} | {_spread(b['rate'], 0)} | {_spread(a['rate'], 0)} | "
                        f"{a['rate']['median'] / b['rate']['median']:.2f} | {_spread(b['cpu_ms_per_1000'], 0)} | "
                        f"{_spread(a['cpu_ms_per_1000'], 0)} | "
                        f"{a['cpu_ms_per_1000']['median'] / b['cpu_ms_per_1000']['median']:.2f} |")
    return [*rows, ""]


def runs_table(results: dict[str, Any]) -> list[str]:
    """Which run measured what, how long it took, and how busy the machine was meanwhile."""
    rows = [
        (
            "| section | Qdrant | size × repeats | started | seconds | load before → after "
            "| CPU: this run / other processes | qdrant-client |"
        ),
        "| --- | --- | --- | --- | ---: | --- | --- | --- |",
    ]
    for name, section in results["sections"].items():
        groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for target, part in section.get("targets", {"(its own local mode)": section}).items():
            stamp = part.get("run") or {"started": results.get("started", ""), "seconds": section.get("seconds", "")}
            groups.setdefault(stamp["started"], (stamp, []))[1].append(TARGET_LABEL.get(target, target))
        for stamp, labels in groups.values():
            load = f"{stamp['load_before']} → {stamp['load_after']}" if "load_before" in stamp else "not recorded"
            cpu = (f"{stamp['own_cpu_share']:.0%} / {stamp['other_cpu_share']:.0%}" if "other_cpu_share" in stamp
                   else "not recorded")
            size = f"{stamp.get('size', results['size'])} × {stamp.get('repeats', results['repeats'])}"
            rows.append(
                f"| {name} | {', '.join(labels)} | {size} | {stamp['started']} | {stamp['seconds']} | {load} | {cpu} | "
                f"{stamp.get('qdrant_client', '')} |"
            )
    return rows


def process_runtime(section: dict[str, Any]) -> str:
    """What the bench process ran an in-process section on, per target (bench/run.py,
    ``run_as_the_worker_does``); runs that did not record it ran on asyncio's loop."""
    on: dict[bool, list[str]] = {True: [], False: []}
    for name, part in section.get("targets", {}).items():
        on[part.get("run", {}).get("event_loop") == "uvloop"].append(TARGET_LABEL.get(name, name))
    said = []
    if on[True]:
        said.append("on the worker's event loop (uvloop) and collector policy, as a worker does, "
                    f"for {', '.join(on[True])}")
    if on[False]:
        said.append(f"on asyncio's own loop with Python's default collector for {', '.join(on[False])} "
                    "(runs from before the bench took the worker's)")
    return f"The bench process ran {'; '.join(said)}." if said else ""


def contention(results: dict[str, Any]) -> list[str]:
    """A warning in the header when other processes took a noticeable share of the cores."""
    stamps: dict[str, tuple[float, str]] = {}
    for name, section in results["sections"].items():
        for part in section.get("targets", {"": section}).values():
            stamp = part.get("run", {})
            if "other_cpu_share" in stamp:
                stamps[f"{name} {stamp['started']}"] = (stamp["other_cpu_share"], name)
    busy = sorted((v for v in stamps.values() if v[0] >= 0.05), reverse=True)
    if not busy:
        return []
    return [(f"**Other processes were running** on this machine while {len(busy)} of the {len(stamps)} recorded "
             f"section runs ran: they used up to {busy[0][0]:.0%} of the cores' time ({busy[0][1]}; per section in "
             "*Runs* at the end). "
             "Absolute events/s are lower and noisier than on an idle machine; the ratios, taken side by side, "
             "less so."), ""]


NOTES = Path(__file__).resolve().parent / "notes"


def notes(section: str) -> list[str]:
    """Hand-written lines kept under a section (bench/notes/SECTION.md): what changed between runs
    and why, which the numbers alone do not say. A run of the section rewrites its numbers, not these."""
    path = NOTES / f"{section}.md"
    return [*path.read_text().rstrip("\n").splitlines(), ""] if path.exists() else []


def profile_table(section: dict[str, Any]) -> list[str]:
    """One column per workload and Qdrant target (older results: one level, no targets)."""
    targets = section.get("targets", {"": section})
    runs = {f"{kind} {TARGET_LABEL.get(target, '')}".strip(): v for target, t in targets.items()
            for kind, v in t.items() if isinstance(v, dict) and "microseconds_per_event" in v}
    stages = sorted({s for v in runs.values() for s in v["microseconds_per_event"]})
    rows = ["| stage (µs per event) | " + " | ".join(runs) + " |", "| --- |" + " ---: |" * len(runs)]
    rows.extend(
        f"| {stage} | " + " | ".join(f"{v['microseconds_per_event'].get(stage, 0):.0f}" for v in runs.values()) + " |"
        for stage in stages
    )
    rows.append(
        "| **total** | " + " | ".join(f"{sum(v['microseconds_per_event'].values()):.0f}" for v in runs.values()) + " |"
    )
    return rows


COLOURS = {"memory": "tab:blue", "disk": "tab:brown", "rest": "tab:green", "grpc": "tab:purple"}


def plot_windows(section: dict[str, Any], path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    styles = ["-", "--", ":"]
    for target, t in section["targets"].items():
        colour = COLOURS[target]
        for cell in t["cells"]:
            left.scatter(cell["p99_ms"], cell["events_per_second"]["median"], color=colour)
            left.annotate(
                f"{cell['max_events']}/{cell['max_wait_seconds']}s",
                (cell["p99_ms"], cell["events_per_second"]["median"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        left.scatter([], [], color=colour, label=TARGET_LABEL[target])
        for style, wait in zip(styles * 3, sorted({c["max_wait_seconds"] for c in t["cells"]}), strict=False):
            cells = sorted((c for c in t["cells"] if c["max_wait_seconds"] == wait), key=lambda c: c["max_events"])
            right.plot([c["max_events"] for c in cells], [c["p99_ms"] for c in cells], marker="o", linestyle=style,
                       color=colour, label=f"{TARGET_LABEL[target]}, wait {wait}s")
    left.set_xlabel("p99 latency at a steady rate (ms)")
    left.set_ylabel("backlog throughput (events/s)")
    left.set_title("max events / max wait: throughput vs p99")
    left.legend(fontsize=7)
    right.set_xscale("log")
    right.set_xlabel("window max events")
    right.set_ylabel("p99 latency (ms)")
    right.set_title("p99 latency by window size")
    right.legend(fontsize=6)
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
    for target, t in section["targets"].items():
        for kind, r in t["workloads"].items():
            labels.append(f"{kind}\n{TARGET_LABEL[target]}")
            connector.append(r["connector"]["median"])
            naive.append(r["naive"]["median"])
            ceiling.append(r["ceiling"]["median"])
    fig, axis = plt.subplots(figsize=(max(9, len(labels) * 0.9), 4.4))
    xs = range(len(labels))
    for offset, values, label in ((-0.27, naive, "naive"), (0.0, connector, "connector"), (0.27, ceiling, "ceiling")):
        axis.bar([x + offset for x in xs], values, width=0.27, label=label)
    axis.set_xticks(list(xs), labels, fontsize=7)
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
    server = next((t["qdrant"] for name in ("patches", "reembed", "windows", "scale")
                   for key, t in _targets(sections, name).items() if key in ("rest", "grpc")), None)
    lines = [
        "# Benchmarks", "",
        ("Generated by `python -m bench.run` (raw numbers: `bench/results/`; which run measured which section on "
         "which Qdrant, and how busy the machine was, is in *Runs* at the end). Every headline figure is a ratio of "
         "two things measured side by side in the same run, repeated: median (min–max, n). Nothing here is a test "
         "and nothing in the test suite asserts on time."), "",
        *contention(results),
        f"**Machine:** {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, no GPU; Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {m['kafka']}.", "",
        "**Qdrant targets:** `local memory` is qdrant-client's embedded local mode with `location=':memory:'`, "
        "`local disk` the same with a storage folder (SQLite, one commit per point written): no network and no "
        "server-side batching, so a request costs little and a point written costs a lot. "
        + (f"`server REST` and `server gRPC` are a real {server.rsplit(' over ', 1)[0]} "
           "(connector/dev/qdrant_server.py: free ports, empty temporary storage, SIGKILLed at the end), one "
           "server for both protocols; every run on it starts by deleting every collection. It runs on the same "
           "2 cores as the broker, the connector and the baselines, so its CPU is part of every number, as the "
           "network round trip is: each request pays one, which the naive consumer pays per event and the "
           "connector per window (existence read, batch, read-back)." if server else "No server was measured.") , "",
        "## Headline ratios", "", *headline(sections), "",
    ]
    if "patches" in sections:
        lines += ["## 1. Payload-patch throughput", "",
                  ("connector: the Faust app in this process through the real broker (windows, coalescing, existence "
                   "screening, read-back verification, verification events). naive: an aiokafka consumer sending one "
                   "`batch_update_points` request with one operation per event, `wait=true`. ceiling: the same "
                   "operations, parsed and grouped beforehand (not timed), sent straight to Qdrant in window-sized "
                   "`batch_update_points` calls. Fresh identical collections for each; in each repeat the three run "
                   "one after the other on each target in turn. "
                   f"{process_runtime(sections['patches'])}"), "",
                  *patches_table(sections["patches"]), "", f"![patches]({images['patches']})", "", *notes("patches")]
    if protocol_rows(sections):
        lines += ["## REST or gRPC", "",
                  ("gRPC's speed-up over REST on the same server: events/s over gRPC divided by events/s over REST, "
                   "per repeat (the two ran next to each other in each repeat), and for the window settings one value "
                   "per setting (for latency, REST's divided by gRPC's). Above 1, gRPC was faster; *faster* names a "
                   "protocol only when every value agrees."), "",
                  *protocol_table(sections), "", *protocol_summary(sections)]
    if "reembed" in sections:
        r = sections["reembed"]
        lines += ["## 2. Re-embed throughput", "",
                  (f"{r['events']:,} re-embed events (inline texts, {r['model']}, windows of {r['window_max_events']}) "
                   "through the connector against raw fastembed embedding the same texts in window-sized calls in "
                   "one process; each connector run is followed by a raw run."), "",
                  "| Qdrant | connector texts/s | raw fastembed texts/s | ratio |", "| --- | ---: | ---: | ---: |"]
        for name, t in r["targets"].items():
            lines.append(f"| {TARGET_LABEL[name]} | {_spread(t['connector'], 1)} | {_spread(t['raw_fastembed'], 1)} | "
                         f"{_spread(t['connector_vs_raw'])}× |")
        lines.append("")
    if "seed_claim" in sections:
        s = sections["seed_claim"]
        a, b = s["scroll_update_vectors"], s["retrieve_upsert"]
        lines += ["## 3. The seed's claim: scroll → update_vectors vs retrieve → embed → upsert", "",
                  (f"{s['points']:,} points with {s['payload_bytes']:,}-byte payloads, Qdrant {s['qdrant']}; "
                   "bytes are the JSON request and response bodies the REST client would send and receive."), "",
                  "| | scroll + update_vectors | retrieve + upsert | ratio |", "| --- | ---: | ---: | ---: |",
                  f"| request bytes | {a['request_bytes']:,} | {b['request_bytes']:,} | {s['ratio_request_bytes']}× |",
                  (f"| request + response bytes | {a['request_bytes'] + a['response_bytes']:,} | "
                   f"{b['request_bytes'] + b['response_bytes']:,} | {s['ratio_network_bytes']}× |"),
                  f"| seconds (median) | {a['median_seconds']} | {b['median_seconds']} | {s['ratio_time']}× |",
                  (f"| seconds without embedding | {a['median_seconds_without_embedding']} | "
                   f"{b['median_seconds_without_embedding']} | {s['ratio_time_without_embedding']}× |"), ""]
    if "windows" in sections:
        w = sections["windows"]
        lines += [
            "## 4. Window settings",
            "",
            (
                f"Backlog of {w['backlog_events']:,} distinct patches for throughput, then latency from the producer's "
                "send to the verification event's arrival at a steady rate of half that setting's backlog throughput; "
                "on each target in turn at each setting. The p99 bound is the goal: max wait + 2 × one batch time, a "
                "batch time being one full window at the backlog rate (max events / backlog events/s). A window that "
                "cannot fill closes after max wait, so on a short backlog a large window with a long wait loses "
                "throughput to its last, partial window (2,000 events / 2 s on a 5,000-event backlog spends ~2 s "
                "waiting), and half that rate is lower too; on a steady stream the same wait shows as latency."
            ),
            "",
            ("| Qdrant | max events | max wait (s) | backlog events/s | steady rate (events/s) | p50 (ms) | p99 (ms) "
             "| p99 bound (ms) | p99 / bound |"),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, t in w["targets"].items():
            for c in t["cells"]:
                bound = (f"{c['p99_bound_ms']} | {c['p99_ms'] / c['p99_bound_ms']:.2f} |" if "p99_bound_ms" in c
                         else "– | – |")
                lines.append(
                    f"| {TARGET_LABEL[name]} | {c['max_events']} | {c['max_wait_seconds']} | "
                    f"{_spread(c['events_per_second'], 0)} | {c['latency_rate']:g} | {c['p50_ms']} | {c['p99_ms']} | "
                    f"{bound}"
                )
        lines += ["", f"![windows]({images['windows']})", ""]
    if "pages" in sections:
        p = sections["pages"]
        lines += [
            "## 5. Scroll page size (export)",
            "",
            (
                f"{p['points']:,} points ({p['vector']}, {p['payload_bytes']}-byte payloads), Qdrant {p['qdrant']}; "
                f"each export is its own process; peak RSS from `wait4`. Opening the collection alone peaks at "
                f"{p['baseline_open_only_mib']} MiB (local mode loads it into memory) and takes "
                f"{p['baseline_open_only_seconds']} s, which is subtracted from the export's time. The export's own "
                "memory is its peak Python heap under `tracemalloc`, traced from after the collection is open."
            ),
            "",
            "| page size | points/s | peak RSS (MiB) | RSS above opening (MiB) | export's own heap peak (MiB) |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in p["cells"]:
            lines.append(
                f"| {c['page_size']} | {_spread(c['points_per_second'], 0)} | {_spread(c['peak_rss_mib'], 0)} | "
                f"{c['above_baseline_mib']} | {c.get('export_heap_peak_mib', '')} |"
            )
        lines += ["", f"![pages]({images['pages']})", ""]
    if "backlog" in sections:
        b = sections["backlog"]
        lines += [
            "## 6. Memory under backlog",
            "",
            (
                f"{b['events']:,} events produced first ({b['produce_seconds']} s), then one worker process caught "
                f"up in {b['catch_up_seconds']} s ({b['events_per_second']:,.0f} events/s; identical patches on 100 "
                f"points, Qdrant on disk). Peak RSS {b['peak_rss_mib']} MiB."
            ),
            "",
            "| backlog confirmed | " + " | ".join(b["rss_mib_at"]) + " |",
            "| --- |" + " ---: |" * len(b["rss_mib_at"]),
            "| worker RSS (MiB) | " + " | ".join(str(v) for v in b["rss_mib_at"].values()) + " |",
            "",
            f"![backlog]({images['backlog']})",
            "",
        ]
    if "scale" in sections:
        s = sections["scale"]
        lines += [
            "## 7. Scale-out",
            "",
            (
                f"{s['events']:,} distinct patches on {s['partitions']} partitions; worker processes in one consumer "
                "group. On the server both workers write the one collection; local mode allows one process per "
                "folder, so there each worker has its own copy (which stands in for a shared store)."
            ),
            "",
            "| Qdrant | one worker (events/s) | two workers (events/s) | two / one |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, t in s["targets"].items():
            lines.append(f"| {TARGET_LABEL[name]} | {_spread(t['one_worker'], 0)} | {_spread(t['two_workers'], 0)} | "
                         f"{_spread(t['two_vs_one'])}× |")
        lines.append("")
    if "documents" in sections:
        lines += documents_lines(sections["documents"]) + notes("documents")
    if notes("cluster"):  # standalone runs (bench/cluster_*.py): their numbers are written down by hand
        lines += ["## Workers on a Qdrant cluster", "", *notes("cluster")]
    if notes("cdc"):  # standalone runs (bench/cdc.py), written down by hand as well
        lines += ["## Debezium input (CDC)", "", *notes("cdc")]
    if "peer" in sections:
        lines += report_peer.section_lines(sections["peer"], m["cores"]) + notes("peer")
    for name in sorted(n for n in sections if n.startswith("commits")):  # bench/commits.py, one per comparison
        table = direct_table if sections[name].get("kind") == "direct" else commits_table
        lines += table(sections[name]) + notes(name.replace(" ", "-"))
    if "profile" in sections:
        lines += [
            "## Where the time goes",
            "",
            (
                "pyinstrument on the window processor in this process (no Kafka: consuming and publishing are in the "
                "end-to-end numbers above), 500-event windows; each sample goes to the innermost stage on its stack. "
                "On a server the Qdrant stages include the client's own work (encoding the request, decoding the "
                "answer) besides the wait; over gRPC the wait itself is a row of its own (grpc.aio runs each call as "
                "a task, off the stage's stack), its encoding and decoding stay in the stages. "
                "Embedding runs in the embedding thread and shows as the time the window "
                "awaits it. Workloads: distinct and mixed patches, the peer section's 384-d upserts, inline-text "
                "re-embeds. Measured on asyncio's own loop (`QCC_EVENT_LOOP=asyncio python -m bench.run --only "
                "profile`): on uvloop the wait for a gRPC answer is not seen as a row of its own but as *other*."
            ),
            "",
            *profile_table(sections["profile"]),
            "",
        ]
    lines += ["## Runs", "",
              ("Load is the 1-minute load average; CPU is the share of all cores' time used by this run (the bench, "
               "its broker, server and worker processes) and by every other process on the machine while the "
               "section ran."), "", *runs_table(results), ""]
    report.write_text("\n".join(lines))
