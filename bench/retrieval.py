"""Retrieval on the real-prose corpus: dense chunks, BM25 chunks and the two fused, side by side.

    .venv/bin/python -m bench.retrieval                         # every document, 200 queries, 128/16
    .venv/bin/python -m bench.retrieval --documents 64 --queries 40 --max-tokens 256 --overlap 32

The sentences are bench/documents.py's (from the second half of each document, found in no other).
Every document is chunked as the connector chunks it and each chunk gets two vectors: the dense one
the connector writes (all-MiniLM-L6-v2) and a BM25 sparse one of the same text (fastembed's
Qdrant/bm25, the model the ``models`` command assembles, with Qdrant's IDF modifier). Four searches,
each grouped by document: dense alone, BM25 alone, and the two fused by reciprocal rank (RRF) and by
distribution-based score fusion (DBSF), each one query with two prefetches. They run on a Qdrant
server: local mode scores sparse vectors point by point in Python, minutes a query at this size. It
answers whether a lexical vector beside the dense one reaches issue 33's retrieval goal before
chunked collections are given one. The chunks' vectors are kept under .cache/bench-retrieval/ (by
documents and chunk size), so a second run of the same setting only searches.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import pickle
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as qm

from bench import corpus
from bench.common import ROOT
from bench.documents import DEFAULT_CHUNKING, queries, sample, score
from connector.dev.qdrant_server import QdrantServer
from connector.embedding.embedder import Embedder, load_model
from connector.embedding.offline_model import assemble_all
from connector.settings import DEFAULT_SPARSE_MODEL, Settings

PREFETCH = 50  # candidates each vector hands to the fusion
FUSED_LIMIT = 5
EXACT = qm.SearchParams(exact=True)  # no HNSW: the same answer whether or not the index is built yet


def _chunk_and_embed(model_paths: dict[str, str], texts: list[str], max_tokens: int,
                     overlap: int) -> list[tuple[int, list[float], list[int], list[float]]]:
    """(document position, dense vector, BM25 indices, BM25 values) of every chunk of ``texts``."""
    settings = Settings(model_paths=model_paths)
    embedder = Embedder(settings)
    chunker = embedder.chunker(settings.dense_model, max_tokens, overlap)
    bm25 = load_model(DEFAULT_SPARSE_MODEL, "sparse", settings)
    out = []
    for position, text in enumerate(texts):
        chunk_texts = [c.text for c in chunker.chunks(text)]
        dense = embedder.embed_sync(settings.dense_model, "dense", chunk_texts)
        for vector, sparse in zip(dense, bm25.embed(chunk_texts), strict=True):
            out.append((position, [float(x) for x in vector], sparse.indices.tolist(), sparse.values.tolist()))
    return out


def chunk_and_embed(model_paths: dict[str, str], texts: list[str], max_tokens: int, overlap: int,
                    processes: int = 2) -> list[tuple[int, list[float], list[int], list[float]]]:
    """:func:`_chunk_and_embed` over ``processes`` processes, documents dealt out in turn."""
    shares = [list(range(i, len(texts), processes)) for i in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_chunk_and_embed, model_paths, [texts[i] for i in share], max_tokens, overlap)
                   for share in shares]
        return [(share[p], d, i, v) for share, f in zip(shares, futures, strict=True) for p, d, i, v in f.result()]


async def measure(documents: int, n_queries: int, max_tokens: int, overlap: int, first: bool = False) -> dict[str, Any]:
    """``first``: the first ``documents`` found (no scan of the whole corpus: the smoke test)."""
    chosen = list(itertools.islice(corpus.scan(), documents)) if first else sample(corpus.load(), documents)
    asked = queries(chosen, n_queries)
    model_paths = assemble_all()
    kept = ROOT / ".cache" / "bench-retrieval" / f"{len(chosen)}-{max_tokens}-{overlap}.pickle"
    started = time.perf_counter()
    if kept.exists():
        chunks = pickle.loads(kept.read_bytes())
    else:
        chunks = chunk_and_embed(model_paths, [d.text for d in chosen], max_tokens, overlap)
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(pickle.dumps(chunks))
    embed_seconds = time.perf_counter() - started
    with QdrantServer() as server:
        return await search_all(server.url, chunks, asked, model_paths, {
            "documents": len(chosen), "chunks": len(chunks), "max_tokens": max_tokens, "overlap_tokens": overlap,
            "queries": len(asked), "chunk_and_embed_seconds": round(embed_seconds, 1), "prefetch": PREFETCH})


async def search_all(url: str, chunks: list[tuple[int, list[float], list[int], list[float]]],
                     asked: list[tuple[int, str]], model_paths: dict[str, str], out: dict[str, Any]) -> dict[str, Any]:
    """The chunks into a new collection on the server at ``url``, then the three searches per sentence."""
    client = AsyncQdrantClient(url=url, timeout=120)
    await client.create_collection(
        "chunks", vectors_config={"dense": qm.VectorParams(size=384, distance=qm.Distance.COSINE)},
        sparse_vectors_config={"bm25": qm.SparseVectorParams(modifier=qm.Modifier.IDF)})
    points = [qm.PointStruct(id=n, payload={"document": position},
                             vector={"dense": dense, "bm25": qm.SparseVector(indices=indices, values=values)})
              for n, (position, dense, indices, values) in enumerate(chunks)]
    for start in range(0, len(points), 1000):
        await client.upsert("chunks", points[start:start + 1000], wait=True)

    settings = Settings(model_paths=model_paths)
    embedder = Embedder(settings)
    bm25 = load_model(DEFAULT_SPARSE_MODEL, "sparse", settings)
    texts = [sentence for _, sentence in asked]
    dense_queries = embedder.embed_sync(settings.dense_model, "dense", texts)
    sparse_queries = [qm.SparseVector(indices=s.indices.tolist(), values=s.values.tolist())
                      for s in bm25.query_embed(texts)]
    searches: dict[str, list[list[str]]] = {"dense": [], "bm25": [], "fused (RRF)": [], "fused (DBSF)": []}
    for dense, sparse in zip(dense_queries, sparse_queries, strict=True):
        dense_list = [float(x) for x in dense]
        both = [qm.Prefetch(query=dense_list, using="dense", limit=PREFETCH, params=EXACT),
                qm.Prefetch(query=sparse, using="bm25", limit=PREFETCH)]
        for name, kwargs in (
            ("dense", {"query": dense_list, "using": "dense"}),
            ("bm25", {"query": sparse, "using": "bm25"}),
            ("fused (RRF)", {"prefetch": both, "query": qm.FusionQuery(fusion=qm.Fusion.RRF)}),
            ("fused (DBSF)", {"prefetch": both, "query": qm.FusionQuery(fusion=qm.Fusion.DBSF)}),
        ):
            found = await client.query_points_groups("chunks", group_by="document", limit=FUSED_LIMIT,
                                                     group_size=1, search_params=EXACT, **kwargs)
            searches[name].append([str(g.id) for g in found.groups])
    await client.close()
    wanted = [str(position) for position, _ in asked]
    return {**out, "results": {name: score(hits, wanted) for name, hits in searches.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=600, help="every k-th document; more than the corpus: all")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_CHUNKING.max_tokens)
    parser.add_argument("--overlap", type=int, default=DEFAULT_CHUNKING.overlap_tokens)
    parser.add_argument("--first", action="store_true", help="the first documents found, not spread over the corpus")
    args = parser.parse_args()
    result = asyncio.run(measure(args.documents, args.queries, args.max_tokens, args.overlap, args.first))
    print(json.dumps(result, indent=2))
    print(f"{result['documents']} documents, {result['chunks']:,} chunks of {result['max_tokens']} tokens "
          f"(overlap {result['overlap_tokens']}), {result['queries']} queries; grouped by document:")
    for name, s in result["results"].items():
        print(f"  {name:12} top-1 {s['top1_share']:.1%}  top-5 {s['top5_share']:.1%}")


if __name__ == "__main__":
    main()
