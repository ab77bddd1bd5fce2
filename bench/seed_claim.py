"""The seed's claim, side by side in one run: re-embedding with scroll -> update_vectors
against retrieve -> embed -> upsert-with-payload, in request bytes and in time; and a sweep of
scroll page sizes for re-embedding and for export.

    .venv/bin/python -m bench.seed_claim [--points 2000] [--payload-bytes 2000]

(``python -m bench.run`` runs it as one section of the report.)

Request bytes are the JSON bodies the REST client would send (the request models serialised
as qdrant-client does). Qdrant runs in embedded local mode on disk: the timings include its
storage, not a network. Results go to bench/results/seed_claim.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from bench.common import ROOT, Context
from connector.bulk.export import export_collection
from connector.bulk.reembed import reembed_collection
from connector.embedding.embedder import Embedder
from connector.embedding.offline_model import assemble_all
from connector.qdrant import RetryingClient
from connector.settings import Settings


def body_bytes(model: Any) -> int:
    return len(model.model_dump_json(exclude_unset=True).encode())


async def seed(client: AsyncQdrantClient, name: str, points: int, payload_bytes: int) -> None:
    rng = random.Random(3)
    await client.create_collection(
        name, vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)}
    )
    words = ["vector", "search", "payload", "index", "shard", "replica", "filter", "scroll", "batch", "alias"]
    for start in range(0, points, 500):
        batch = []
        for i in range(start, min(points, start + 500)):
            body = " ".join(rng.choice(words) for _ in range(40))
            batch.append(qm.PointStruct(id=i, vector={"dense": [rng.random() for _ in range(384)]}, payload={
                "body": body, "meta": {"author": f"user-{i % 50}", "tags": words[: 1 + i % 5]},
                "notes": "x" * max(0, payload_bytes - len(body))}))
        await client.upsert(name, batch)


async def scroll_update_vectors(
    client: AsyncQdrantClient, embedder: Embedder, model: str, name: str, page: int
) -> dict[str, float]:
    """The seed's way: scroll(text field only) -> embed -> update_vectors (ids + vectors)."""
    sent = received = 0
    offset = None
    start = time.perf_counter()
    embed_seconds = 0.0
    while True:
        request = qm.ScrollRequest(limit=page, offset=offset, with_payload=["body"], with_vector=False)
        sent += body_bytes(request)
        records, offset = await client.scroll(
            name, limit=page, offset=offset, with_payload=["body"], with_vectors=False
        )
        received += sum(body_bytes(r) for r in records)
        t0 = time.perf_counter()
        vectors = embedder.embed_sync(model, "dense", [r.payload["body"] for r in records])
        embed_seconds += time.perf_counter() - t0
        update = qm.UpdateVectors(
            points=[qm.PointVectors(id=r.id, vector={"dense": list(v)}) for r, v in zip(records, vectors, strict=True)]
        )
        sent += body_bytes(update)
        await client.update_vectors(name, update.points)
        if offset is None:
            break
    total = time.perf_counter() - start
    return {"seconds": total, "embed_seconds": embed_seconds, "request_bytes": sent, "response_bytes": received}


async def retrieve_upsert(
    client: AsyncQdrantClient, embedder: Embedder, model: str, name: str, ids: list[int]
) -> dict[str, float]:
    """The naive way: per point, retrieve (with payload) -> embed -> upsert the whole point."""
    sent = received = 0
    embed_seconds = 0.0
    start = time.perf_counter()
    for pid in ids:
        sent += body_bytes(qm.PointRequest(ids=[pid], with_payload=True, with_vector=False))
        record = (await client.retrieve(name, [pid], with_payload=True, with_vectors=False))[0]
        received += body_bytes(record)
        t0 = time.perf_counter()
        vector = embedder.embed_sync(model, "dense", [record.payload["body"]])[0]
        embed_seconds += time.perf_counter() - t0
        point = qm.PointStruct(id=pid, vector={"dense": list(vector)}, payload=record.payload)
        sent += body_bytes(qm.PointsList(points=[point]))
        await client.upsert(name, [point])
    total = time.perf_counter() - start
    return {"seconds": total, "embed_seconds": embed_seconds, "request_bytes": sent, "response_bytes": received}


async def measure(ctx: Context) -> dict[str, Any]:
    """The section of ``bench.run``: 1,000 points with 2 KB payloads (tiny: 20), no page sweep."""
    full = ctx.size == "full"
    args = argparse.Namespace(points=1000 if full else 20, payload_bytes=2000, repeats=ctx.repeats,
                              pages=[], models=ctx.model_paths)
    return await run(args)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(model_paths=args.models)
    embedder = Embedder(settings)
    model = settings.dense_model
    embedder.embed_sync(model, "dense", ["warm up"])
    results: dict[str, Any] = {"points": args.points, "payload_bytes": args.payload_bytes,
                               "qdrant": "embedded local mode on disk", "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        client = AsyncQdrantClient(path=tmp)
        await seed(client, "a", args.points, args.payload_bytes)
        await seed(client, "b", args.points, args.payload_bytes)
        runs: dict[str, list[dict[str, float]]] = {"scroll_update_vectors": [], "retrieve_upsert": []}
        for _ in range(args.repeats):  # alternate, so that drift on a noisy machine hits both
            runs["scroll_update_vectors"].append(await scroll_update_vectors(client, embedder, model, "a", 100))
            runs["retrieve_upsert"].append(
                await retrieve_upsert(client, embedder, model, "b", list(range(args.points)))
            )
        for name, values in runs.items():
            seconds = sorted(v["seconds"] for v in values)
            results[name] = {
                "median_seconds": round(seconds[len(seconds) // 2], 2),
                "min_seconds": round(seconds[0], 2),
                "max_seconds": round(seconds[-1], 2),
                "median_seconds_without_embedding": round(
                    sorted(v["seconds"] - v["embed_seconds"] for v in values)[len(values) // 2], 3
                ),
                "request_bytes": int(values[0]["request_bytes"]),
                "response_bytes": int(values[0]["response_bytes"]),
            }
        a, b = results["scroll_update_vectors"], results["retrieve_upsert"]
        results["ratio_request_bytes"] = round(b["request_bytes"] / a["request_bytes"], 2)
        results["ratio_network_bytes"] = round(
            (b["request_bytes"] + b["response_bytes"]) / (a["request_bytes"] + a["response_bytes"]), 2
        )
        results["ratio_time"] = round(b["median_seconds"] / a["median_seconds"], 2)
        results["ratio_time_without_embedding"] = round(
            b["median_seconds_without_embedding"] / max(a["median_seconds_without_embedding"], 1e-9), 2
        )

        sink = RetryingClient(client)
        sweep: dict[str, Any] = {}
        for page in args.pages:
            t0 = time.perf_counter()
            await reembed_collection(sink, embedder, "a", text_field="body", vector_name="dense", page_size=page,
                                     checkpoint_file=Path(tmp) / "ck.json", show_progress=False)
            reembed_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            await export_collection(sink, "a", Path(tmp) / f"dump-{page}.jsonl", page_size=page, show_progress=False)
            export_s = time.perf_counter() - t0
            sweep[str(page)] = {"reembed_points_per_second": round(args.points / reembed_s, 1),
                                "export_points_per_second": round(args.points / export_s, 1)}
            print("page", page, sweep[str(page)], flush=True)
        if sweep:
            results["page_size_sweep"] = sweep
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--payload-bytes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pages", type=int, nargs="+", default=[10, 50, 100, 256, 1000])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "seed_claim.json")
    args = parser.parse_args()
    args.models = assemble_all(ROOT / ".cache" / "models")
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
