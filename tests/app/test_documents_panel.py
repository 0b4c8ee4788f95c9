"""Chat with local files in the window: the documents panel, the conversation's collections, a reply's sources.

Real parts throughout: the app's SQLite database, the generated corpus and hostile files,
indexing through the real extraction worker, retrieval, Qt PDF, and SmolLM2 for a live reply.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest

from r1desk.app import i18n
from r1desk.app.qt import QDesktopServices, QMessageBox, QObject, Qt, QUrl, Slot
from r1desk.engine.docs import store
from r1desk.engine.docs.retrieval import retrieve

from tests.app.conftest import load, record_texts, send
from tests.support.corpus import Corpus, build_corpus, build_hostile
from tests.support.hub import fake_hub  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

HOSTILE = ("locked.pdf", "damaged.pdf", "program.txt", "mojibake.txt", "empty.txt", "bomb.docx")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture
def messy(corpus, tmp_path) -> Path:
    """A folder as users have them: the corpus with hostile files mixed in."""
    folder = tmp_path / "messy"
    shutil.copytree(corpus.folder, folder)
    hostile = tmp_path / "hostile"
    build_hostile(hostile, big=False)
    for name in HOSTILE:
        shutil.copy(hostile / name, folder / name)
    return folder


def index_folder(qtbot, dialog, name: str, folder: Path, timeout: int = 120_000) -> list[tuple]:
    """Make ``name``, add ``folder`` and index it; (event, progress words) as the GUI thread saw each."""
    assert dialog.create(name)
    seen: list[tuple] = []
    worker = dialog.add_paths([str(folder)])
    assert worker is not None
    # Connected after the panel's own slot, so the words are those the event produced.
    worker.yielded.connect(lambda event: seen.append((event, dialog.progress_label.text())))
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=timeout)
    return seen


def test_a_messy_folder_is_indexed_with_progress_and_each_problem_said(make_window, qtbot, messy) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    assert "No collections yet" in dialog.heading.text() and not dialog.index_button.isEnabled()
    seen = index_folder(qtbot, dialog, "Work papers", messy)

    # Progress: files done of the total, passages per second, the file being read.
    steps = [words for event, words in seen if getattr(event, "phase", None) == "index"]
    assert steps, seen
    total = len([p for p in messy.iterdir()])
    assert any(re.fullmatch(rf"\d+ of {total} files · [\d.]+ passages/s( · about .+ left)? · \S+", w) for w in steps), steps
    assert steps[-1].startswith(f"{total} of {total} files")
    assert dialog.progress.isHidden() and not dialog.cancel_button.isVisible()
    assert dialog.progress_label.text().startswith("Indexed in ")
    assert f"{len(HOSTILE)} files could not be read: see Problems." in dialog.progress_label.text()

    # What the panel shows: the folder, the counts from the database, full-text only with a hint.
    collection = store.get_collection(window.history.db, "Work papers")
    stats = store.stats(window.history.db, collection)
    assert stats.indexed == total - len(HOSTILE) and stats.chunks > 50
    assert f"{stats.indexed} files indexed · {stats.chunks:,} passages" in dialog.heading.text()
    assert dialog.roots.count() == 1 and dialog.roots.item(0).text() == str(messy)
    assert dialog.search_label.text().startswith("Full-text search only") and "embedding model" in dialog.search_label.text()

    # Each hostile file with its reason in words, and the Problems tab in front.
    assert dialog.tabs.currentIndex() == 1 and dialog.tabs.tabText(1) == f"Problems ({len(HOSTILE)})"
    rows = dict(dialog.problem_rows())
    assert sorted(rows) == sorted(HOSTILE)
    assert rows["locked.pdf"] == "It is locked with a password."
    assert rows["program.txt"].startswith("Named as text, but it holds binary data")
    assert rows["bomb.docx"].startswith("It is too big, or would unpack")
    assert rows["empty.txt"].startswith("It holds no text to index")

    # In Chinese, the same problems in Chinese.
    i18n.install("zh_CN")
    rows = dict(dialog.problem_rows())
    assert rows["locked.pdf"] != "It is locked with a password." and re.search("[\u4e00-\u9fff]", rows["locked.pdf"])
    assert re.search("[\u4e00-\u9fff]", dialog.index_button.text())

    # Indexing again reads nothing that did not change.
    dialog.index_now()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=60_000)
    assert dialog.summary.added == 0 and dialog.summary.unchanged == total


def test_cancel_stops_indexing_and_keeps_the_files_done(make_window, qtbot, tmp_path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):
        (folder / f"note-{i:03}.txt").write_text(f"Note {i}: the inventory of shelf {i} was counted again.\n" * 30)
    window = make_window()
    dialog = window.documents.show_panel()
    assert dialog.create("Notes")
    worker = dialog.add_paths([str(folder)])
    assert dialog.cancel_button.isVisible() and not dialog.index_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.last_event is not None and dialog.last_event.done >= 3, timeout=60_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.progress_label.text() == "Stopping after the file being read…"
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=30_000)
    assert worker.done and dialog.summary is None
    assert dialog.status.text().startswith("Indexing stopped. The ") and "goes on from there" in dialog.status.text()
    kept = store.stats(window.history.db, store.get_collection(window.history.db, "Notes")).indexed
    assert 3 <= kept < 150

    # Again: the rest is done, the files kept are not read again.
    dialog.index_now()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=120_000)
    assert dialog.summary.added == 150 - kept and dialog.summary.unchanged == kept


def test_a_collection_is_deleted_only_when_confirmed(make_window, qtbot, corpus) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Reports", corpus.folder)
    db = window.history.db
    assert store.row_counts(db)["chunks"] > 0

    box = dialog.ask_delete()
    assert "Delete Reports?" in box.text() and "your files stay as they are" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    assert store.find_collection(db, "Reports") is not None and dialog.confirm is None

    box = dialog.ask_delete()
    delete = next(b for b in box.buttons() if b.text() == "Delete")
    delete.click()
    counts = store.row_counts(db)
    assert store.find_collection(db, "Reports") is None
    assert counts["documents"] == counts["chunks"] == counts["chunks_words"] == counts["chunks_trigram"] == 0
    assert dialog.list.count() == 0 and "No collections yet" in dialog.heading.text()
    assert dialog.status.text().startswith("Deleted Reports (") and "your files are untouched" in dialog.status.text()
    assert all(Path(p).exists() for p in corpus.files)


def test_each_conversation_keeps_its_own_collections(make_window, qtbot, corpus) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    for name in ("Handbook", "Reports"):
        assert dialog.create(name)
    button = window.documents.button
    assert button.names == ["Handbook", "Reports"] and button.chosen == []
    first = window.history.create_conversation("first")
    second = window.history.create_conversation("second")

    window.open_conversation(first)
    button.actions_["Reports"].trigger()  # ticked in the menu, as the user does
    assert window.chat.collections(first) == ["Reports"]
    assert button.text() == "Reports" and "Reports" in button.toolTip()
    window.open_conversation(second)
    assert button.chosen == [] and not button.actions_["Reports"].isChecked()
    button.choose("Handbook", True)
    button.choose("Reports", True)
    assert window.chat.collections(second) == ["Handbook", "Reports"] and button.text() == "2"
    window.open_conversation(first)
    assert button.chosen == ["Reports"] and button.actions_["Reports"].isChecked()

    # Deleting a collection takes it out of the conversations that used it, and of the menu.
    dialog.refresh(select="Reports")
    dialog.delete("Reports")
    assert button.names == ["Handbook"] and button.chosen == []
    assert window.chat.collections(second) == ["Handbook"]

    # Manage… opens the panel.
    dialog.hide()
    button.manage.trigger()
    assert dialog.isVisible()


def _saved_reply(window, corpus, question: str, answer: str) -> tuple[int, list]:
    """A conversation whose reply was written from the corpus's passages for ``question``."""
    db = window.history.db
    sources = retrieve(db, ["Corpus"], question, None, k=4)
    assert sources
    conversation = window.history.create_conversation("From the corpus")
    window.history.add_message(conversation, "user", question)
    reply = window.history.start_reply(conversation, "a model")
    window.history.finish_reply(reply, answer, "", "complete", {"completion_tokens": 20})
    store.save_sources(db, reply, sources)
    return conversation, sources


def test_a_pdf_source_opens_at_its_page_with_the_passage_marked(make_window, qtbot, corpus) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Corpus", corpus.folder)
    dialog.hide()
    fact = corpus.fact("aurora-pump")
    conversation, sources = _saved_reply(window, corpus, "Aurora reactor coolant pump replaced",
                                         "The pump was replaced on 14 March 2019 [1].")
    pdf = next(s for s in sources if Path(s.path).name == fact.file and s.page <= fact.page <= (s.page_end or s.page))
    window.open_conversation(conversation)
    reply = window.chat_view.messages[-1]
    assert not reply.sources.isHidden() and len(reply.sources.buttons) == len(sources)
    labels = [b.text() for b in reply.sources.buttons]
    assert labels[pdf.n - 1] == f"[{pdf.n}] {fact.file} · page {pdf.page}"  # where the passage starts
    assert fact.found_in(html.unescape(reply.sources.buttons[pdf.n - 1].toolTip()))  # the matched passage on hover

    qtbot.mouseClick(reply.sources.buttons[pdf.n - 1], Qt.MouseButton.LeftButton)
    viewer = window.documents.viewer
    assert viewer is not None and viewer.isVisible() and viewer.mode == "pdf"
    qtbot.waitUntil(lambda: viewer.current_page == fact.page, timeout=5000)
    assert viewer.page_label.text() == f"Page {fact.page} of 6"
    qtbot.waitUntil(lambda: viewer.marked, timeout=10_000)  # Qt PDF's search found the passage on that page
    assert viewer.search.resultAtIndex(viewer.pdf_view.currentSearchResultIndex()).page() == fact.page - 1
    assert viewer.current_page == fact.page


def test_a_text_source_opens_at_its_line_and_the_answers_markers_link_to_it(make_window, qtbot, corpus) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Corpus", corpus.folder)
    dialog.hide()
    fact = corpus.fact("lisbon-closing")
    conversation, sources = _saved_reply(window, corpus, "Lisbon office close permanently September",
                                         "It closes at the end of September [1]. See also [9], which is not a source.")
    text_source = next(s for s in sources if Path(s.path).name == fact.file and s.line_start <= fact.line)
    window.open_conversation(conversation)
    reply = window.chat_view.messages[-1]
    rendered = reply.content.segments[0].toHtml()
    assert 'href="cite:1"' in rendered and 'href="cite:9"' not in rendered  # only numbers that are sources
    assert reply.sources.cited == {1}

    # The marker [n] of the source opens it, as a click on the link does.
    reply.content.segments[0].anchorClicked.emit(QUrl(f"cite:{text_source.n}"))
    viewer = window.documents.viewer
    assert viewer is not None and viewer.mode == "text" and viewer.marked
    start, end = viewer.marked_range
    assert fact.found_in(viewer.text_view.toPlainText()[start:end]) and len(viewer.text_view.extraSelections()) == 1
    # Scrolled to the chunk that matched (the passage, grown by its neighbours, starts earlier).
    matched = store.chunks_by_id(window.history.db, [text_source.chunk_id])[text_source.chunk_id]
    bar = viewer.text_view.verticalScrollBar()
    # At the top of the view, unless the file ends before it could be.
    qtbot.waitUntil(lambda: viewer.current_line == matched.line_start or (
        bar.value() == bar.maximum() and viewer.visible_lines[0] < matched.line_start), timeout=5000)
    first, last = viewer.visible_lines
    assert first <= matched.line_start <= fact.line <= last
    assert fact.found_in(" ".join(viewer.text_view.toPlainText().splitlines()[fact.line - 1:fact.line + 2]))

    # A file gone since says so, in the window's notice.
    moved = Path(text_source.path).with_suffix(".moved")
    os.rename(text_source.path, moved)
    try:
        qtbot.mouseClick(reply.sources.buttons[text_source.n - 1], Qt.MouseButton.LeftButton)
        assert window.notice.isVisible() and "is no longer at" in window.notice.label.text()
    finally:
        os.rename(moved, text_source.path)


def test_a_reply_from_documents_lists_its_sources_live_and_from_history(make_window, qtbot, corpus, smollm2) -> None:
    window = make_window(**{"chat.temperature": 0.0, "chat.n_ctx": 1024, "chat.max_tokens": 12})
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Corpus", corpus.folder)
    dialog.hide()
    load(qtbot, window, smollm2)

    # Chosen before the conversation exists: its first message is answered from the documents.
    window.new_conversation()
    window.documents.button.choose("Corpus", True)
    assert window.current_id is None
    send(qtbot, window, "Which lake supplies the plant with cooling water?")
    qtbot.waitUntil(lambda: window.reply is None, timeout=300_000)
    assert window.chat.collections(window.current_id) == ["Corpus"]
    reply = window.chat_view.messages[-1]
    assert reply.status == "complete" and reply.sources.sources
    names = [Path(s.path).name for s in reply.sources.sources]
    assert "reactor_maintenance.pdf" in names
    assert reply.sources.buttons[0].text().startswith("[1] ")

    # From the history: the same sources under the reply.
    live = [(s.n, s.path, s.page) for s in reply.sources.sources]
    window.open_conversation(window.current_id)
    again = window.chat_view.messages[-1]
    assert [(s.n, s.path, s.page) for s in again.sources.sources] == live
    assert window.documents.button.chosen == ["Corpus"]


def test_a_watched_folder_is_indexed_when_a_file_is_added(make_window, qtbot, tmp_path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "first.txt").write_text("The first note is about the boiler room.\n")
    window = make_window()
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Watched", folder)
    dialog.tabs.setCurrentIndex(0)
    dialog.roots.item(0).setCheckState(Qt.CheckState.Checked)  # "watch this folder"
    db = window.history.db
    assert store.get_collection(db, "Watched").roots[0].watched
    qtbot.waitUntil(lambda: window.documents.watch.watching == {"Watched": [str(folder)]}, timeout=30_000)

    (folder / "second.txt").write_text("The second note says the attic stays locked.\n")
    qtbot.waitUntil(lambda: len(store.documents(db, store.get_collection(db, "Watched"))) == 2, timeout=30_000)
    qtbot.waitUntil(lambda: "a change in a watched folder was indexed (1 new" in dialog.status.text(), timeout=10_000)
    assert "2 files indexed" in dialog.heading.text()

    # The next time the app starts, the folder is watched from the start.
    window.documents.watch.shut_down()
    other = make_window()
    assert other.documents.watch.watching == {}
    other.documents.start()
    qtbot.waitUntil(lambda: other.documents.watch.watching == {"Watched": [str(folder)]}, timeout=30_000)
    other.documents.shut_down()

    # Taken out of the collection: its files leave the index; the files themselves stay.
    dialog.roots.setCurrentRow(0)
    assert dialog.remove_selected_root() == 2
    assert store.documents(db, store.get_collection(db, "Watched")) == [] and dialog.roots.count() == 0
    assert "they stay on the disk" in dialog.status.text() and (folder / "second.txt").exists()


def test_with_an_embedding_model_the_collection_is_searched_by_meaning_too(make_window, qtbot, corpus,
                                                                           minilm_gguf) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    assert dialog.create("Meaning")
    dialog.set_embedding_model(str(minilm_gguf))
    assert "The next indexing adds vectors with all-MiniLM-L6-v2-F16.gguf" in dialog.search_label.text()
    seen = record_texts(dialog.progress_label)
    dialog.add_paths([str(corpus.folder)])
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=300_000)
    assert "Loading the embedding model all-MiniLM-L6-v2-F16.gguf…" in seen, seen
    collection = store.get_collection(window.history.db, "Meaning")
    stats = store.stats(window.history.db, collection)
    assert stats.vectors == stats.chunks > 0 and stats.without_vectors == 0
    assert dialog.search_label.text() == "Searched by words and by meaning, with all-MiniLM-L6-v2-F16.gguf."


class Opener(QObject):
    """Stands in for the system's viewer: what the app asks it to open (QDesktopServices' own hook)."""

    def __init__(self):
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toLocalFile())


def test_a_word_source_opens_in_the_systems_viewer(make_window, qtbot, corpus) -> None:
    window = make_window()
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Corpus", corpus.folder)
    dialog.hide()
    fact = corpus.fact("falcon-budget")
    sources = retrieve(window.history.db, ["Corpus"], "Falcon budget capped steering board", None, k=4)
    word = next(s for s in sources if Path(s.path).name == fact.file)
    opener = Opener()
    QDesktopServices.setUrlHandler("file", opener, "open")
    try:
        window.documents.open_source(word)
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert opener.opened == [word.path]
    assert window.documents.viewer is None or not window.documents.viewer.isVisible()
    assert not window.notice.isVisible()


def test_the_offered_embedding_model_is_downloaded_and_the_collection_embedded(
        make_window, qtbot, corpus, fake_hub, minilm_gguf) -> None:  # noqa: F811
    from r1desk.engine.models import catalog

    offer = catalog.load().embedding_models[0]
    filename = offer.quant(offer.default_quant).files[0].name
    fake_hub.add_repo(offer.repo, {filename: minilm_gguf})  # the loopback hub serves MiniLM under its name
    window = make_window(**{"hub.endpoint": fake_hub.endpoint})
    dialog = window.documents.show_panel()
    index_folder(qtbot, dialog, "Offered", corpus.folder)
    assert dialog.download_button.isVisible() and offer.name in dialog.download_button.text()
    assert dialog.search_label.text().startswith("Full-text search only")

    job = dialog.download_embedding_model()
    assert job is not None and not dialog.download_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.download is None and dialog.worker is None, timeout=300_000)
    assert job.state == "done" and Path(job.model.path).name == filename
    assert not dialog.download_button.isVisible()
    # The vectors were added to what was indexed, without reading the files again.
    assert dialog.summary.added == 0 and dialog.summary.embedded > 0
    stats = store.stats(window.history.db, store.get_collection(window.history.db, "Offered"))
    assert stats.vectors == stats.chunks and dialog.search_label.text().startswith(
        f"Searched by words and by meaning, with {filename}")
