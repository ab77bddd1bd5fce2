"""The benchmark runner at a toy size, so that it cannot rot. Nothing here looks at speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import direct
from bench.peer_sink import unavailable as peer_unavailable
from bench.profile import STAGES
from bench.report import direct_table, notes
from bench.run import SECTIONS, merge
from connector.dev.qdrant_server import server_start_script

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]


def run_bench(bootstrap: str, out: Path, report: Path, *options: str) -> dict[str, Any]:
    """The runner at the toy size; when it fails or outlasts the test's own limit, the failure
    shows the end of its output (which section, which wait) rather than a bare timeout."""
    log = out.parent.parent / "bench.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "bench.run", "--size", "tiny", "--bootstrap", bootstrap,
                                    "--out", str(out), "--report", str(report), *options], cwd=PROJECT,
                                   env={**os.environ, "PYTHONPATH": str(PROJECT)}, stdout=sink,
                                   stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=500)  # below the test's own 600 s
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    assert code == 0, f"bench.run {' '.join(options)} {'ran over 500 s' if code is None else f'exited {code}'}:\n{tail}"
    return json.loads(out.read_text())


PROFILE_KINDS = {"distinct", "mixed", "upserts"}


def check_profile(profile: dict[str, Any], targets: set[str]) -> None:
    """Every profiled run is there, on every target, with a time per event for stages the
    profiler knows. Which stages get samples at this size is chance; what they are is not."""
    assert set(profile["targets"]) == targets
    known = set(STAGES.values()) | {"other (connector and asyncio)"}
    for target, runs in profile["targets"].items():
        kinds = PROFILE_KINDS | ({"reembed"} if target == "memory" else set())
        assert set(runs) == kinds | {"run"}, (target, set(runs))
        for kind in kinds:
            per_event = runs[kind]["microseconds_per_event"]
            assert per_event, (target, kind, per_event)
            assert set(per_event) <= known, (target, kind, per_event)
            assert runs[kind]["qdrant"] == target


@pytest.mark.usefixtures("model_paths")  # the models are assembled before the bench needs them
def test_runner_writes_results_report_and_plots(kafka, tmp_path: Path) -> None:
    out, report = tmp_path / "results" / "latest.json", tmp_path / "BENCHMARKS.md"
    results = run_bench(kafka.bootstrap, out, report, "--qdrant", "local")
    assert set(results["sections"]) == set(SECTIONS)
    assert results["machine"]["cores"] == os.cpu_count()
    patches = results["sections"]["patches"]["targets"]
    assert set(patches) == {"memory", "disk"}
    assert set(patches["memory"]["workloads"]) == {"identical", "distinct", "mixed"}
    assert all(
        r["connector"]["median"] > 0 and r["connector_vs_naive"]["n"] == 1
        for r in patches["memory"]["workloads"].values()
    )
    assert set(results["sections"]["scale"]["targets"]) == {"disk"}  # worker processes cannot share memory
    assert patches["disk"]["run"]["size"] == "tiny"
    assert 0 <= patches["disk"]["run"]["other_cpu_share"] <= 1
    check_profile(results["sections"]["profile"], {"memory", "disk"})
    documents = results["sections"]["documents"]  # chunked documents on the real-prose corpus
    edits = documents["edit_pass"]
    assert edits["not_verified"] == 0
    assert 0 < edits["connector_embedded"]["total"] <= edits["re_embed_everything"]["total"]
    assert documents["retrieval"]["chunked"]["queries"] > 0
    hybrid = documents["retrieval"]["hybrid"]  # the connector's points, both vectors, searched on a server
    if server_start_script()[0] is not None:
        assert set(hybrid["results"]) == {"dense", "bm25", "fused (RRF)", "fused (DBSF)"}
        assert hybrid["chunks"] > 0
        assert all(s["queries"] == documents["retrieval"]["chunked"]["queries"] for s in hybrid["results"].values())
    text = report.read_text()
    assert "## Headline ratios" in text
    assert "vs naive consumer" in text
    assert "Where the time goes" in text
    assert "## 8. Chunked documents" in text
    assert "server" not in text.split("## Headline ratios")[1].split("## 1.")[0]
    for plot in ("patches", "windows", "pages", "backlog"):
        image = tmp_path / "results" / "plots" / f"{plot}.png"
        assert image.read_bytes()[:4] == b"\x89PNG"
        assert f"](results/plots/{plot}.png)" in text


@pytest.mark.usefixtures("model_paths")
def test_server_part_alone_measures_on_grpc_and_keeps_earlier_targets(kafka, tmp_path: Path) -> None:
    """``--qdrant grpc`` runs only the sections a server can serve, on a server of its own, and
    adds its targets to the results file next to the local ones measured before."""
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    out, report = tmp_path / "results" / "latest.json", tmp_path / "BENCHMARKS.md"
    server = run_bench(kafka.bootstrap, out, report, "--qdrant", "grpc")
    assert set(server["sections"]) == {"patches", "reembed", "windows", "scale", "profile"}
    for name in server["sections"]:
        assert set(server["sections"][name]["targets"]) == {"grpc"}
    check_profile(server["sections"]["profile"], {"grpc"})
    patches = server["sections"]["patches"]["targets"]["grpc"]
    assert "server" in patches["qdrant"]
    assert "gRPC" in patches["qdrant"]
    assert all(r["connector"]["median"] > 0 for r in patches["workloads"].values())
    assert server["sections"]["scale"]["targets"]["grpc"]["two_workers"]["n"] == 1
    text = report.read_text()
    assert "| server gRPC |" in text
    assert "patches, mixed, server gRPC: connector vs naive consumer" in text
    assert "## REST or gRPC" not in text  # one protocol measured: nothing to compare
    assert "upserts server gRPC" in text.split("## Where the time goes")[1]

    earlier = {"size": "full", "repeats": 3, "machine": {}, "started": "earlier", "sections": {
        "scale": {"events": 20_000, "partitions": 4, "targets": {"disk": {"kept": True}}}, "pages": {"kept": True}}}
    merged = merge(earlier, server)
    assert merged["sections"]["pages"] == {"kept": True}
    assert set(merged["sections"]["scale"]["targets"]) == {"disk", "grpc"}
    assert merged["sections"]["scale"]["targets"]["disk"] == {"kept": True}


@pytest.mark.usefixtures("model_paths")
def test_peer_section_beside_the_official_sink(kafka, tmp_path: Path) -> None:
    """``--only peer`` at toy size on a gRPC server: the official sink, the connector, the naive
    consumer and the ceiling each measured, and the report's peer tables; skipped where the
    server or the sink (Java, ../shared/peers/qdrant-kafka, Maven for its jars) cannot run."""
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    reason = peer_unavailable()
    if reason is not None:
        pytest.skip(reason)
    out, report = tmp_path / "results" / "latest.json", tmp_path / "BENCHMARKS.md"
    results = run_bench(kafka.bootstrap, out, report, "--only", "peer", "--qdrant", "grpc")
    if "peer" not in results["sections"]:
        pytest.skip("the sink's dependencies could not be fetched from Maven Central (the run printed why)")
    peer = results["sections"]["peer"]
    assert set(peer["targets"]) == {"grpc"}
    t = peer["targets"]["grpc"]
    assert all(t[who]["median"] > 0 and t[who]["n"] == 1
               for who in ("sink", "connector", "unverified", "naive", "ceiling"))
    assert t["connector_windows"]["not_verified"] == 0
    assert t["connector_windows"]["dead_letters"] == 0
    assert t["startup_seconds"]["sink"]["median"] > 0
    text = report.read_text()
    assert "## Peer: the official Qdrant Kafka sink" in text
    assert "upserts, server gRPC: connector vs the official Qdrant sink (gRPC)" in text
    assert "What the read-back costs" in text
    assert all(line in text for line in notes("peer"))  # the hand-written lines kept under the section


@pytest.mark.usefixtures("model_paths")
def test_retrieval_bench_scores_four_searches_on_a_server() -> None:
    """bench/retrieval.py at a toy size: dense, BM25 and both fusions, each query scored once."""
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    done = subprocess.run([sys.executable, "-m", "bench.retrieval", "--first", "--documents", "4", "--queries", "6"],
                          cwd=PROJECT, env={**os.environ, "PYTHONPATH": str(PROJECT)}, capture_output=True, text=True,
                          timeout=500, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert result["documents"] == 4
    assert result["chunks"] > 4
    assert result["queries"] >= 4
    assert set(result["results"]) == {"dense", "bm25", "fused (RRF)", "fused (DBSF)"}
    for scored in result["results"].values():
        assert scored["queries"] == result["queries"]
        assert 0 <= scored["top1"] <= scored["top5"] <= scored["queries"]


@pytest.mark.usefixtures("model_paths")
def test_direct_comparison_runs_both_trees_in_turns_and_reports(kafka) -> None:
    """bench/direct.py at a toy size, this checkout on both sides: each turn is the tree's own
    connector in a process of its own; the report's table has a row per workload and target."""
    script, reason = server_start_script()
    if script is None:
        pytest.skip(reason)
    section = direct.compare({"before": PROJECT, "after": PROJECT}, rounds=1, targets=("rest",),
                             events={"identical": 300, "peer": 2400}, bootstrap=kafka.bootstrap)
    assert set(section["measured"]) == {"identical, rest", "peer, rest"}
    for sides in section["measured"].values():
        assert set(sides) == {"before", "after"}
        assert all(side[key]["n"] == 1 and side[key]["median"] > 0
                   for side in sides.values() for key in ("rate", "cpu_ms_per_1000"))
    commit = {"sha": "0" * 40, "subject": "this checkout"}
    section.update({"commits": {"before": commit, "after": commit}, "rounds": 1, "started": "now", "seconds": 1.0})
    table = direct_table(section)
    assert table[0] == "## Before and after a change, measured directly"
    assert sum(row.startswith(("| identical, rest |", "| peer, rest |")) for row in table) == 2
