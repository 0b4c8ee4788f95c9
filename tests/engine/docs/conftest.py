"""The generated corpus, made once per test session, and its files extracted once."""

from __future__ import annotations

import pytest

from r1desk.engine.docs.extract import Extracted, extract_file

from tests.support.corpus import Corpus, build_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def extracted(corpus) -> dict[str, Extracted]:
    """Each corpus file extracted in this process, by file name."""
    out = {}
    for path in corpus.files:
        result = extract_file(path)
        assert isinstance(result, Extracted), result
        out[path.name] = result
    return out
