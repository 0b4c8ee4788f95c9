"""Embeddings through the model process: the converted MiniLM model, as documents and /v1/embeddings use it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from r1desk.engine.errors import Cancelled, ModelLoadFailed
from r1desk.engine.events import CancelToken
from r1desk.engine.inference.host import LoadOptions, ModelHost

pytestmark = pytest.mark.slow

TEXTS = [
    "The coolant pump of the reactor was replaced in March.",
    "In March they swapped out the reactor's coolant pump.",
    "My grandmother bakes excellent apple pie.",
    "电池的续航时间是十二个小时。",
    "",
]


@pytest.fixture(scope="module")
def embedder(minilm_gguf):
    host = ModelHost()
    host.load(minilm_gguf, LoadOptions(embedding=True, n_threads=2))
    yield host
    host.close()


def test_vectors_match_llama_cpp_in_process_normalised(embedder, minilm_gguf):
    import llama_cpp

    assert embedder.info.is_embedding and embedder.info.embedding_length == 384
    got = embedder.embed(TEXTS)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    llm = llama_cpp.Llama(str(minilm_gguf), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512,
                          n_threads=2, verbose=False)
    try:
        for text, vector in zip(TEXTS[:4], got):
            want = np.array(llm.embed(text, normalize=True), dtype=np.float32)
            assert float(want @ vector) > 0.9999, text
    finally:
        llm.close()
    # Meaning, not letters: the paraphrase is nearer than the unrelated sentence.
    assert got[0] @ got[1] > got[0] @ got[2] + 0.2


def test_texts_longer_than_the_model_takes_are_cut_not_fatal(embedder):
    long = "word " * 3000
    vectors = embedder.embed([long, "short"])
    assert vectors.shape == (2, 384) and np.isfinite(vectors).all()
    assert embedder.count_tokens_of([long])[0] > 512  # it really was longer than the 512 positions


def test_many_texts_go_in_groups_and_keep_their_order(embedder):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(150)]
    together = embedder.embed(texts)
    alone = embedder.embed([texts[97]])
    assert together.shape == (150, 384)
    assert float(together[97] @ alone[0]) > 0.9999


def test_token_counts_include_the_special_tokens(embedder):
    # [CLS] hello world [SEP]
    assert embedder.count_tokens_of(["hello world", ""]) == [4, 2]


def test_cancel_stops_between_groups(embedder):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        embedder.embed(["a"] * 200, token=token)


def test_several_threads_at_once_get_their_own_vectors(embedder):
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = embedder.embed([TEXTS[i % 4]] * 70)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    reference = embedder.embed(TEXTS[:4])
    for i, vectors in results.items():
        assert float(vectors[-1] @ reference[i % 4]) > 0.9999


def test_a_chat_model_refuses_embeddings_and_an_embedding_model_refuses_chat(embedder, smollm2):
    with pytest.raises(ModelLoadFailed, match="embeddings, not for chat"):
        list(embedder.chat([{"role": "user", "content": "hi"}], {"temperature": 0, "max_tokens": 4}))
    host = ModelHost()
    try:
        host.load(smollm2, LoadOptions(n_ctx=512, n_threads=2))
        with pytest.raises(ModelLoadFailed, match="chat, not for embeddings"):
            host.embed(["hello"])
    finally:
        host.close()
