"""Chunked documents (issue 33) on the real-prose corpus (bench/corpus.py), three measurements in one run:

1. ingestion: one upsert per document into a chunked collection (``QCC_CHUNKED_COLLECTIONS``)
   through the connector in this process and the real broker (chunking, embedding, writing,
   read-back verification), against raw fastembed embedding the same chunk texts in the same
   window-sized groups, nothing else (and, for information, raw fastembed with the chunking timed
   too). CPU: the share of the cores this run and other processes used during each side. The
   ratio is taken on a spread subset of at most ``RATIO_DOCUMENTS`` documents, each side alone on
   the machine. Each chunk gets two vectors, the dense one and a BM25 one (``sparse_vector``), on
   both sides; the rest are ingested afterwards (timed, not compared) while the other chunk
   setting of step 3 is embedded in a process of its own beside it.
2. edit pass: one paragraph of each document edited (a sentence added at its end), the edits sent
   as upserts of the whole new text; the embeddings the connector performed per edited document
   are its verification events' ``documents[].embedded``, beside the re-embed-everything baseline
   (delete the document's chunks and embed every chunk of the new text, as Airbyte's Qdrant
   destination does), whose count is the number of chunks of the new text by the same chunker.
3. retrieval: sentences from the second half of documents (deterministic, each found in no other
   document of the run), searched as a plain Qdrant search: over the connector's chunk points,
   grouped by ``_chunk.document_id``, and over one point per document embedded from its whole
   text (what the connector does without chunking: the model reads its first 256 tokens). Top-1
   and top-5: is the source document there. Then the connector's chunk points, both vectors as it
   wrote them, copied to a Qdrant server, searched by dense, BM25 and the two fused (bench/retrieval.py:
   local mode scores sparse vectors point by point in Python, minutes a query at this size); skipped,
   with the reason, where no server can start. Then the same chunks with another ``max_tokens`` /
   ``overlap_tokens`` (settings the connector offers), embedded directly, to see what chunk size does.

Local mode in memory for the connector: the embedding sets the pace (~22 chunks of 128 tokens a
second on one thread here), so a server adds nothing but time. The full size is a deterministic sample of the
corpus (every k-th document by name, ``QCC_BENCH_DOCUMENTS``, 32 by default) sized to what the bench
can embed in about half an hour on 2 shared cores; BENCHMARKS.md says how many.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import os
import re
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from qdrant_client import models as qm

from bench import corpus
from bench.common import Confirmations, Context, InProcessConnector, MachineUse, TargetName, percentile, produce
from connector.dev.qdrant_server import QdrantServer, server_start_script
from connector.domain.chunking import Chunker
from connector.embedding.embedder import Embedder
from connector.settings import ChunkedField, Settings

SUPPORTED: tuple[TargetName, ...] = ("memory",)
WINDOW = 4  # documents per window: ~110 chunks of 256 tokens in one embedding call (onnxruntime's memory
# grows with the call: windows of 8 such documents took this process past 12 GB)
EDIT = " This paragraph was revised after the document was first written, and the revision is one sentence long."
SETTINGS_TRIED = ((256, 32),)  # (max_tokens, overlap_tokens) beside the connector's default (ChunkedField)
DEFAULT_CHUNKING = ChunkedField(text_field="body")
SPARSE = "bm25"  # the chunks' sparse vector (ChunkedField.sparse_vector), beside the unnamed dense one
RATIO_DOCUMENTS = 96  # the ingestion ratio's subset: ~6,600 chunks at 128/16, minutes a side; the corpus ~45,000


def sample(documents: list[corpus.Document], n: int) -> list[corpus.Document]:
    """Every k-th document by name: ``n`` of them spread over the whole corpus."""
    if n >= len(documents):
        return documents
    return [documents[i * len(documents) // n] for i in range(n)]


def edited(text: str) -> tuple[str, int]:
    """The text with one paragraph edited: the middle one of those with at least 12 words gets a
    sentence at its end. Returns the new text and the paragraph's index."""
    paragraphs = text.split("\n\n")
    long = [i for i, p in enumerate(paragraphs) if len(p.split()) >= 12] or list(range(len(paragraphs)))
    at = long[len(long) // 2]
    paragraphs[at] = paragraphs[at] + EDIT
    return "\n\n".join(paragraphs), at


SENTENCE = re.compile(r"(?<=[.!?])\s+")


def queries(documents: list[corpus.Document], n: int) -> list[tuple[int, str]]:
    """``n`` (document index, sentence) pairs: round-robin over the documents, from the second half of
    each text, sentences of 8 to 40 words that are mostly words and appear in no other document."""
    candidates: list[list[str]] = []
    for d in documents:
        half = d.text[len(d.text) // 2:]
        sentences = [" ".join(s.split()) for s in SENTENCE.split(half)]
        good = [s for s in sentences if 8 <= len(s.split()) <= 40
                and sum(w.isalpha() for w in s.split()) >= 0.7 * len(s.split())]
        candidates.append(list(dict.fromkeys(good)))
    flat = [" ".join(d.text.split()) for d in documents]
    out: list[tuple[int, str]] = []
    taken = [0] * len(documents)
    rounds = 0
    while len(out) < n and rounds < 50:
        for i, options in enumerate(candidates):
            if len(out) >= n:
                break
            while taken[i] < len(options):
                # spread the picks over the second half: stride through the candidates
                sentence = options[(taken[i] * 7919) % len(options)] if options else ""
                taken[i] += 1
                if sentence and not any(sentence in other for j, other in enumerate(flat) if j != i):
                    out.append((i, sentence))
                    break
        rounds += 1
    return out


def embeddings_for_edit(old: list[str], new: list[str]) -> int:
    """What an edit costs the connector: the distinct new chunk texts that no old chunk has (a chunk whose
    text is stored keeps its vector, and a text two new chunks share is embedded once;
    connector/domain/documents.py). The bench checks the connector's own count against it at the
    default setting, and prices the other settings with it."""
    return len(set(new) - set(old))


def embed_groups(embedder: Embedder, model: str, groups: list[list[str]]) -> list[list[Any]]:
    return [embedder.embed_sync(model, "dense", texts) if texts else [] for texts in groups]


def _embed_apart(model_paths: dict[str, str], groups: list[list[str]], keep: bool,
                 sparse: bool) -> tuple[float, list[list[Any]]]:
    settings = Settings(model_paths=model_paths)
    embedder = Embedder(settings)
    embedder.embed_sync(settings.dense_model, "dense", ["warm up"])
    if sparse:
        embedder.embed_sync(settings.sparse_model, "sparse", ["warm up"])
    start = time.perf_counter()
    vectors = embed_groups(embedder, settings.dense_model, groups)
    if sparse:  # the BM25 vectors the connector makes beside the dense ones (not kept)
        for texts in groups:
            if texts:
                embedder.embed_sync(settings.sparse_model, "sparse", texts)
    return time.perf_counter() - start, vectors if keep else []


def embed_apart(model_paths: dict[str, str], groups: list[list[str]], keep: bool = False,
                sparse: bool = False) -> tuple[float, list[Any]]:
    """Raw fastembed on ``groups`` in a process of its own (the models loaded first, not timed): the seconds the
    embedding took (``sparse``: BM25 vectors made too) and, with ``keep``, the dense vectors. Its own process,
    because onnxruntime keeps what a session grew to until the session goes: a second model in this process
    beside the connector's (~11 GB here with 256-token chunks) would double it."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_embed_apart, model_paths, groups, keep, sparse).result()


async def search_hits(client: Any, collection: str, vectors: list[Any], grouped: bool) -> list[list[str]]:
    """Per query vector, the ids of the top-5 documents."""
    hits = []
    for vector in vectors:
        if grouped:
            result = await client.query_points_groups(collection, query=list(vector), group_by="_chunk.document_id",
                                                      limit=5, group_size=1)
            hits.append([str(g.id) for g in result.groups])
        else:
            points = (await client.query_points(collection, query=list(vector), limit=5, with_payload=True)).points
            hits.append([str(p.payload["document"]) for p in points if p.payload])
    return hits


def score(hits: list[list[str]], wanted: list[str]) -> dict[str, Any]:
    top1 = sum(h[:1] == [w] for h, w in zip(hits, wanted, strict=True))
    top5 = sum(w in h for h, w in zip(hits, wanted, strict=True))
    return {"queries": len(wanted), "top1": top1, "top5": top5, "top1_share": round(top1 / len(wanted), 4),
            "top5_share": round(top5 / len(wanted), 4)}


async def hybrid_searches(client: Any, chosen: list[corpus.Document], asked: list[tuple[int, str]],
                          model_paths: dict[str, str]) -> dict[str, Any]:
    """The connector's chunk points of "articles", both vectors as it wrote them, copied to a Qdrant
    server and searched four ways (bench/retrieval.py); where no server can start, why not."""
    from bench.retrieval import search_all  # it takes this module's sentences and scoring: imported late

    script, reason = server_start_script()
    if script is None:
        return {"skipped": reason}
    position = {d.id: p for p, d in enumerate(chosen)}
    chunks = []
    offset = None
    while True:
        page, offset = await client.scroll("articles", limit=1000, offset=offset, with_payload=True, with_vectors=True)
        for point in page:
            sparse = point.vector[SPARSE]
            chunks.append((position[point.payload["_chunk"]["document_id"]], list(point.vector[""]),
                           list(sparse.indices), list(sparse.values)))
        if offset is None:
            break
    with QdrantServer() as server:
        found = await search_all(server.url, chunks, asked, model_paths, {"chunks": len(chunks)})
    print("documents retrieval over the connector's chunks on a server: " + ", ".join(
        f"{name} {s['top1_share']:.1%}" for name, s in found["results"].items()), flush=True)
    return found


def peak_rss_mib() -> int:
    """This process's peak resident memory (the connector's and the baseline's models are both in it)."""
    status = Path("/proc/self/status").read_text()
    return next((int(line.split()[1]) // 1024 for line in status.splitlines() if line.startswith("VmHWM")), 0)


def package(name: str) -> str:
    """Where a document comes from, for telling near neighbours: its package or stdlib module."""
    parts = name.split("/")
    return re.split(r"[-.]", parts[1], maxsplit=1)[0].lower() if len(parts) > 1 else name


async def measure(ctx: Context) -> dict[str, Any]:
    if ctx.size == "full":
        documents = corpus.load()
        chosen = sample(documents, int(os.environ.get("QCC_BENCH_DOCUMENTS", "32")))
        n_queries = 200
    else:  # the smoke test: the first three documents found, shortened (no scan of the whole corpus)
        documents = list(itertools.islice(corpus.scan(), 3))
        chosen = [corpus.Document(d.id, d.name, "\n\n".join(d.text.split("\n\n")[:8])[:3000]) for d in documents]
        n_queries = 6
    described = corpus.describe(documents)
    settings = Settings(model_paths=ctx.model_paths)
    model = settings.dense_model
    embedder = Embedder(settings)
    chunker: Chunker = embedder.chunker(model, DEFAULT_CHUNKING.max_tokens, DEFAULT_CHUNKING.overlap_tokens)
    embedder.embed_sync(model, "dense", ["warm up"])
    timed = sample(chosen, RATIO_DOCUMENTS)
    timed_ids = {d.id for d in timed}
    rest = [d for d in chosen if d.id not in timed_ids]
    chunks = [chunker.chunks(d.text) for d in chosen]
    started = time.perf_counter()
    timed_chunks = [chunker.chunks(d.text) for d in timed]
    chunking_seconds = time.perf_counter() - started
    groups = [[c.text for cs in timed_chunks[i:i + WINDOW] for c in cs] for i in range(0, len(timed), WINDOW)]
    timed_total = sum(map(len, timed_chunks))
    names = {d.id: d.name for d in chosen}
    print(f"documents: {len(chosen)} of {len(documents)}, {sum(map(len, chunks))} chunks; the ratio on "
          f"{len(timed)} ({timed_total} chunks)", flush=True)

    chunked = {name: {"text_field": "body", "sparse_vector": SPARSE} for name in ("articles", "warmup")}
    conf = ctx.settings("documents", window_max_events=WINDOW, window_max_wait_seconds=1.0,
                        chunked_collections=chunked)
    target = ctx.local("memory")
    client = await target.fresh_client(ctx.scratch("qdrant"))
    for name in chunked:
        await client.create_collection(name, vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE),
                                       sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)})

    def upsert(collection: str, doc_id: str, text: str) -> tuple[bytes, bytes]:
        event = {"schema_version": 1, "collection": collection, "op": "upsert",
                 "points": [{"id": doc_id, "payload": {"body": text, "source": names.get(doc_id, "")}}]}
        return f"{collection}/{doc_id}".encode(), json.dumps(event).encode()

    out: dict[str, Any] = {"corpus": described, "documents": len(chosen), "model": model, "window_max_events": WINDOW,
                           "max_tokens": DEFAULT_CHUNKING.max_tokens, "overlap_tokens": DEFAULT_CHUNKING.overlap_tokens,
                           "qdrant": target.describe(),
                           "words": {"median": statistics.median(d.words for d in chosen),
                                     "total": sum(d.words for d in chosen)},
                           "chunks": {"total": sum(map(len, chunks)),
                                      "per_document_median": statistics.median(map(len, chunks))}}
    try:
        async with (
            InProcessConnector(conf, client),
            Confirmations(ctx.bootstrap, conf.verification_topic) as seen,
        ):
            topic = conf.patch_topic
            await seen.wait(topic, await produce(ctx.bootstrap, topic, [upsert("warmup", chosen[0].id, "warm up")]))

            # 1. ingestion: raw fastembed over the subset's chunks (in a process of its own), then the connector
            ingestion: dict[str, Any] = {"documents": len(timed), "chunks": timed_total}
            use = MachineUse()
            raw_seconds, _ = await asyncio.to_thread(embed_apart, ctx.model_paths, groups, False, True)
            ingestion["raw_use"] = use.result()
            use = MachineUse()
            start = time.time()
            done = await seen.wait(topic, await produce(ctx.bootstrap, topic,
                                                        [upsert("articles", d.id, d.text) for d in timed]))
            connector_seconds = done - start
            ingestion["connector_use"] = use.result()
            ingestion.update({
                "connector": round(len(timed) / connector_seconds, 4),
                "raw_fastembed": round(len(timed) / raw_seconds, 4),
                "raw_chunk_and_embed": round(len(timed) / (raw_seconds + chunking_seconds), 4),
                "connector_seconds": round(connector_seconds, 1), "raw_seconds": round(raw_seconds, 1),
                "chunking_seconds": round(chunking_seconds, 1),
                "chunks_per_second": {"connector": round(timed_total / connector_seconds, 2),
                                      "raw_fastembed": round(timed_total / raw_seconds, 2)},
            })
            # the other chunk settings (3b), each embedded in a process of its own beside the rest's ingestion
            others = [(max_tokens, overlap, [[c.text for c in cs] for cs in
                                             (embedder.chunker(model, max_tokens, overlap).chunks(d.text)
                                              for d in chosen)]) for max_tokens, overlap in SETTINGS_TRIED]
            other_vectors = asyncio.gather(*[  # started now: gather makes each a task
                asyncio.to_thread(embed_apart, ctx.model_paths, texts, True) for _, _, texts in others])
            start = time.time()
            if rest:
                await seen.wait(topic, await produce(ctx.bootstrap, topic,
                                                     [upsert("articles", d.id, d.text) for d in rest]))
            ingestion["rest"] = {"documents": len(rest), "seconds": round(time.time() - start, 1),
                                 "beside": "the other chunk settings' embedding"}
            ingestion["connector_vs_raw"] = round(ingestion["connector"] / ingestion["raw_fastembed"], 3)
            ingestion["connector_vs_raw_with_chunking"] = round(
                ingestion["connector"] / ingestion["raw_chunk_and_embed"], 3)
            out["ingestion"] = ingestion
            print(f"documents ingestion: connector {ingestion['connector']:.3f} docs/s, raw "
                  f"{ingestion['raw_fastembed']:.3f} docs/s, {ingestion['connector_vs_raw']}x", flush=True)

            # 3. retrieval, before the edits change the texts
            asked = queries(chosen, n_queries)
            wanted = [chosen[i].id for i, _ in asked]
            query_vectors = await asyncio.to_thread(embedder.embed_sync, model, "dense", [s for _, s in asked])
            with_chunks = await search_hits(client, "articles", query_vectors, grouped=True)
            await client.create_collection("whole", vectors_config=qm.VectorParams(size=384,
                                                                                  distance=qm.Distance.COSINE))
            _, whole = await asyncio.to_thread(embed_apart, ctx.model_paths, [[d.text for d in chosen[i:i + WINDOW]]
                                                     for i in range(0, len(chosen), WINDOW)], keep=True)
            await client.upsert("whole", [qm.PointStruct(id=d.id, vector=list(v), payload={"document": d.id})
                                          for d, v in zip(chosen, [v for g in whole for v in g], strict=True)])
            without = await search_hits(client, "whole", query_vectors, grouped=False)
            misses = [{"source": names[w], "top": names.get(h[0], h[0]) if h else None, "sentence": s[:160],
                       "same_package": bool(h) and package(names[w]) == package(names.get(h[0], "")),
                       "in_top5": w in h}
                      for h, w, (_, s) in zip(with_chunks, wanted, asked, strict=True) if h[:1] != [w]]
            out["retrieval"] = {"queries": len(asked), "documents": len(chosen),
                                "chunked": score(with_chunks, wanted), "whole_text": score(without, wanted),
                                "misses": misses,
                                "misses_same_package": sum(m["same_package"] for m in misses),
                                "hybrid": await hybrid_searches(client, chosen, asked, ctx.model_paths)}
            print(f"documents retrieval: chunked {out['retrieval']['chunked']['top1_share']:.2%}, whole text "
                  f"{out['retrieval']['whole_text']['top1_share']:.2%}", flush=True)

            # 2. the edit pass: one paragraph of each document
            before = len(seen.records)
            new_texts = [edited(d.text)[0] for d in chosen]
            await seen.wait(topic, await produce(ctx.bootstrap, topic, [
                upsert("articles", d.id, text) for d, text in zip(chosen, new_texts, strict=True)]))
            per_doc: dict[str, dict[str, int]] = {}
            for record in seen.records[before:]:
                for stats in record.get("documents", []):
                    per_doc[str(stats["document_id"])] = stats
            embedded = [per_doc[d.id]["embedded"] for d in chosen]
            reused = [per_doc[d.id]["reused"] for d in chosen]
            new_chunks = [[c.text for c in chunker.chunks(text)] for text in new_texts]
            baseline = [len(cs) for cs in new_chunks]
            predicted = [embeddings_for_edit([c.text for c in old], new)
                         for old, new in zip(chunks, new_chunks, strict=True)]
            out["edit_pass"] = {
                "documents": len(chosen), "edited_paragraphs": len(chosen),
                "connector_embedded": {"total": sum(embedded), "mean": round(statistics.mean(embedded), 3),
                                       "median": statistics.median(embedded), "p90": percentile(embedded, 0.9),
                                       "max": max(embedded)},
                "connector_reused": sum(reused),
                "deleted": sum(per_doc[d.id]["deleted"] for d in chosen),
                "re_embed_everything": {"total": sum(baseline), "mean": round(statistics.mean(baseline), 3),
                                        "median": statistics.median(baseline), "max": max(baseline)},
                "not_verified": sum(r["verification"]["status"] != "verified" for r in seen.records[before:]),
                "predicted_by_chunk_texts": {"total": sum(predicted),
                                             "documents_differing": sum(a != b for a, b in
                                                                        zip(predicted, embedded, strict=True))},
                "embedded_histogram": {str(k): embedded.count(k) for k in sorted(set(embedded))},
            }
            e = out["edit_pass"]
            print(f"documents edit pass: {e['connector_embedded']['mean']} embedded per edited paragraph, "
                  f"re-embed everything {e['re_embed_everything']['mean']}", flush=True)
    finally:
        await client.close()

    # 3b. what the chunk size and overlap do: the same documents chunked otherwise, embedded directly
    settings_tried = []
    for (max_tokens, overlap, texts), (_, vectors) in zip(others, await other_vectors, strict=True):
        local = await ctx.local("memory").fresh_client(ctx.scratch("qdrant"))
        try:
            await local.create_collection("c", vectors_config=qm.VectorParams(size=384, distance=qm.Distance.COSINE))
            points = []
            for d, group in zip(chosen, vectors, strict=True):
                points += [qm.PointStruct(id=len(points) + k, vector=list(v), payload={"_chunk": {"document_id": d.id}})
                           for k, v in enumerate(group)]
            await local.upsert("c", points)
            hits = await search_hits(local, "c", query_vectors, grouped=True)
        finally:
            await local.close()
        other = embedder.chunker(model, max_tokens, overlap)
        edit = [embeddings_for_edit(old, [c.text for c in other.chunks(text)])
                for old, text in zip(texts, new_texts, strict=True)]
        settings_tried.append({"max_tokens": max_tokens, "overlap_tokens": overlap,
                               "chunks": sum(map(len, texts)), **score(hits, wanted),
                               "edit_pass": {"total": sum(edit), "mean": round(statistics.mean(edit), 3),
                                             "p90": percentile(edit, 0.9), "max": max(edit)}})
        print(f"documents retrieval at {max_tokens}/{overlap}: {settings_tried[-1]['top1_share']:.2%}", flush=True)
    out["retrieval"]["other_settings"] = settings_tried
    out["peak_rss_mib"] = peak_rss_mib()
    embedder.close()
    return out
