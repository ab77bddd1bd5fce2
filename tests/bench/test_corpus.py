"""The bench's corpus of real prose (bench/corpus.py) on what this machine has installed: at least
500 long documents, median at least 2,000 words, stable ids, no copies. Skipped, with
the counts, on a machine with fewer such documents installed."""

from __future__ import annotations

import statistics
import uuid

import pytest

from bench import corpus


@pytest.fixture(scope="module")
def documents() -> list[corpus.Document]:
    return corpus.load()


def test_corpus_has_500_long_documents_with_stable_ids(documents: list[corpus.Document]) -> None:
    words = [d.words for d in documents]
    if len(documents) < 500 or statistics.median(words) < 2000:
        pytest.skip(f"this machine has {len(documents)} documents of at least {corpus.MIN_WORDS} words installed, "
                    f"median {statistics.median(words or [0])} words: the corpus needs 500, median 2,000")
    assert min(words) >= corpus.MIN_WORDS
    assert len({d.name for d in documents}) == len(documents)
    assert len({d.id for d in documents}) == len(documents)
    assert all(d.id == str(uuid.uuid5(corpus.CORPUS_NAMESPACE, d.name)) for d in documents)
    assert len({d.text for d in documents}) == len(documents)
    assert not any(d.name.split("/")[1].startswith(corpus.OWN) for d in documents)


def test_cleaning_is_minimal() -> None:
    assert corpus.clean("a  \r\nb\r\n\r\n\r\n\r\nc\n") == "a\nb\n\nc"


def test_module_docstrings_in_source_order() -> None:
    source = ('"""Module."""\nclass A:\n    """Class A."""\n    def f(self):\n        """Method f."""\n'
              'def g():\n    """G."""\n')
    assert corpus.docstrings(source) == "Module.\n\nClass A.\n\nMethod f.\n\nG."
