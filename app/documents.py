"""Chat with local files in the window: the documents panel, the per-conversation choice of collections, watched folders.

Every action is an engine call the command line makes too (``engine.docs.store`` for
collections and their folders, ``engine.docs.index.index_collection`` for indexing,
``engine.docs.watch.Watcher`` for watched folders, ``ChatService.set_collections`` for a
conversation's choice). Indexing runs in a worker with a database connection of its own, so
the window stays responsive and reads the index while it grows.
"""

from __future__ import annotations

import html
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from r1desk.app import theme
from r1desk.app.errors import problem_reason, user_message
from r1desk.app.qt import (
    QAction,
    QDialog,
    QEvent,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QObject,
    QProgressBar,
    QPushButton,
    QSize,
    QSplitter,
    Qt,
    QTabWidget,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    Signal,
)
from r1desk.app.workers import GeneratorWorker
from r1desk.engine.units import human_bytes

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# The indexing job, as the worker runs it.


@dataclass
class EmbedderLoading:
    """Before indexing: the collection's embedding model is being loaded into its model process."""

    name: str


def index_job(db_path: str, name: str, paths: list[str], token: Any) -> Iterator[Any]:
    """Index collection ``name`` (adding ``paths``) on a database connection of the job's own,
    with the collection's embedding model (or the default one) when there is one."""
    from r1desk.engine.db.database import open_db
    from r1desk.engine.docs import store
    from r1desk.engine.docs.embedder import HostEmbedder, model_file, remember
    from r1desk.engine.docs.index import index_collection

    db = open_db(db_path)
    embedder = None
    try:
        path = model_file(db, None, store.find_collection(db, name))
        if path is not None:
            yield EmbedderLoading(Path(path).name)
            embedder = HostEmbedder.load(path)
            remember(db, embedder)
        yield from index_collection(db, name, paths, embedder=embedder, token=token)
    finally:
        if embedder is not None:
            embedder.close()
        db.close()


def model_name(model_id: str | None) -> str:
    """The file name in an embedding model's id ("all-MiniLM-L6-v2.gguf (… bytes, 384 dimensions)")."""
    return (model_id or "").split(" (", 1)[0]


def duration_text(seconds: float) -> str:
    from r1desk.app.i18n import translate

    if seconds < 60:
        return translate("Documents", "{n} s").format(n=max(1, round(seconds)))
    if seconds < 3600:
        return translate("Documents", "{n} min").format(n=round(seconds / 60))
    return translate("Documents", "{h} h {m} min").format(h=int(seconds // 3600), m=round(seconds % 3600 / 60))


# ---------------------------------------------------------------------------------------
# Watched folders while the app runs.


class DocumentWatch(QObject):
    """The collections' watched folders, kept indexed while the app runs (``engine.docs.watch``).

    The watcher calls back on its own thread; the signals carry that to the GUI thread.
    ``restart()`` (after a folder is watched or no longer) starts a fresh watcher on a worker,
    with the embedding model of the first watched collection that has one.
    """

    indexed = Signal(str, object)  # collection, IndexProgress of a run the watcher started
    failed = Signal(str, object)  # collection, the exception a run raised
    restarted = Signal()

    def __init__(self, db_path: str, parent: QObject | None = None):
        super().__init__(parent)
        self.db_path = db_path
        self.watcher: Any = None
        self.embedder: Any = None
        self.worker: GeneratorWorker | None = None
        self._again = False
        self._closed = False
        self._lock = threading.Lock()  # the watcher and its model are swapped on a worker thread

    @property
    def watching(self) -> dict[str, list[str]]:
        return self.watcher.watching if self.watcher is not None else {}

    def restart(self) -> GeneratorWorker | None:
        if self._closed:
            return None
        if self.worker is not None:
            self._again = True
            return None
        worker = self.worker = GeneratorWorker(self._restart)
        worker.errored.connect(lambda exc: log.warning("watching folders failed: %s", exc))
        worker.finished.connect(self._restarted)
        worker.start()
        return worker

    def _restarted(self) -> None:
        self.worker = None
        if self._again:
            self._again = False
            self.restart()
        else:
            self.restarted.emit()

    def _restart(self) -> None:
        from r1desk.engine.db.database import open_db
        from r1desk.engine.docs import store
        from r1desk.engine.docs.embedder import HostEmbedder, model_file
        from r1desk.engine.docs.watch import Watcher

        self._stop()
        db = open_db(self.db_path)
        try:
            watched = [c for c in store.list_collections(db) if any(r.watched for r in c.roots)]
            if not watched:
                return
            embedded = next((c for c in watched if c.embedding_model), None)
            path = model_file(db, None, embedded) if embedded is not None else None
        finally:
            db.close()
        embedder = HostEmbedder.load(path) if path is not None else None
        watcher = Watcher(self.db_path, embedder=embedder, on_event=self.indexed.emit, on_error=self.failed.emit)
        with self._lock:
            if not self._closed:
                self.watcher, self.embedder = watcher.start(), embedder
                return
        if embedder is not None:  # the app closed meanwhile
            embedder.close()

    def _stop(self) -> None:
        with self._lock:
            watcher, self.watcher = self.watcher, None
            embedder, self.embedder = self.embedder, None
        if watcher is not None:
            watcher.stop()
        if embedder is not None:
            embedder.close()

    def shut_down(self) -> None:
        """At exit: the watcher stops (a run under way is cancelled; what it stored stays)."""
        with self._lock:
            self._closed = True
            self._again = False
        self._stop()


# ---------------------------------------------------------------------------------------
# The panel.


class DocumentsDialog(QDialog):
    """Collections of the user's documents: make, fill with folders and files, index with
    progress and cancel, see each file that could not be read and why, watch folders."""

    changed = Signal()  # collections were made, deleted or indexed

    def __init__(self, window: Any):
        super().__init__(window)
        self.window_ = window
        self.db = window.history.db
        self.worker: GeneratorWorker | None = None
        self.token: Any = None
        self.indexing: str | None = None  # the collection being indexed
        self.last_event: Any = None
        self.summary: Any = None  # the last run's IndexSummary
        self.confirm: QMessageBox | None = None
        self.setObjectName("DocumentsDialog")
        self.setMinimumSize(760, 560)
        self.resize(940, 620)
        layout = QVBoxLayout(self)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        # Left: the collections.
        left = QWidget(splitter)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        self.list_title = QLabel(left)
        self.list_title.setObjectName("Muted")
        column.addWidget(self.list_title)
        self.list = QListWidget(left)
        self.list.currentItemChanged.connect(lambda *_: self._show_collection())
        column.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.new_button = QPushButton(left)
        self.new_button.clicked.connect(self._ask_new)
        self.delete_button = QPushButton(left)
        self.delete_button.clicked.connect(self.ask_delete)
        row.addWidget(self.new_button)
        row.addWidget(self.delete_button)
        column.addLayout(row)
        # Right: the chosen collection.
        right = QWidget(splitter)
        body = QVBoxLayout(right)
        body.setContentsMargins(8, 0, 0, 0)
        self.heading = QLabel(right)
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        body.addWidget(self.heading)
        search = QHBoxLayout()
        self.search_label = QLabel(right)
        self.search_label.setWordWrap(True)
        self.search_label.setObjectName("Muted")
        self.model_button = QPushButton(right)
        self.model_button.clicked.connect(self._ask_embedding_model)
        self.download_button = QPushButton(right)
        self.download_button.setIcon(theme.icon("download"))
        self.download_button.clicked.connect(lambda: self.download_embedding_model())
        self.download: Any = None  # the embedding model's DownloadJob while it runs
        buttons = QVBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.model_button)
        buttons.addStretch(1)
        search.addWidget(self.search_label, 1)
        search.addLayout(buttons)
        body.addLayout(search)
        self.tabs = QTabWidget(right)
        roots_page = QWidget(self.tabs)
        roots_layout = QVBoxLayout(roots_page)
        self.roots = QListWidget(roots_page)
        self.roots.itemChanged.connect(self._root_changed)
        self.roots.currentItemChanged.connect(lambda *_: self._update_buttons())
        roots_layout.addWidget(self.roots, 1)
        self.watch_note = QLabel(roots_page)
        self.watch_note.setObjectName("Muted")
        self.watch_note.setWordWrap(True)
        roots_layout.addWidget(self.watch_note)
        add_row = QHBoxLayout()
        self.add_folder_button = QPushButton(roots_page)
        self.add_folder_button.setIcon(theme.icon("folder"))
        self.add_folder_button.clicked.connect(self._ask_folder)
        self.add_files_button = QPushButton(roots_page)
        self.add_files_button.clicked.connect(self._ask_files)
        self.remove_root_button = QPushButton(roots_page)
        self.remove_root_button.clicked.connect(self.remove_selected_root)
        add_row.addWidget(self.add_folder_button)
        add_row.addWidget(self.add_files_button)
        add_row.addStretch(1)
        add_row.addWidget(self.remove_root_button)
        roots_layout.addLayout(add_row)
        self.tabs.addTab(roots_page, "")
        self.problems = QTreeWidget(self.tabs)
        self.problems.setColumnCount(2)
        self.problems.setRootIsDecorated(False)
        self.problems.setWordWrap(True)
        self.problems.setUniformRowHeights(False)
        self.problems.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.problems.header().setStretchLastSection(True)
        self.problems.setColumnWidth(0, 180)
        self.tabs.addTab(self.problems, "")
        body.addWidget(self.tabs, 1)
        # Indexing.
        run = QHBoxLayout()
        self.index_button = QPushButton(right)
        self.index_button.setObjectName("Primary")
        self.index_button.clicked.connect(lambda: self.index_now())
        self.cancel_button = QPushButton(right)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar(right)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        run.addWidget(self.index_button)
        run.addWidget(self.cancel_button)
        run.addWidget(self.progress, 1)
        run.addStretch(0)
        body.addLayout(run)
        self.progress_label = QLabel(right)
        self.progress_label.setObjectName("Muted")
        self.progress_label.setWordWrap(True)
        body.addWidget(self.progress_label)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([220, 540])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.status = QLabel(self)
        self.status.setObjectName("Muted")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._status_text: Any = None
        self.retranslate()
        self.refresh()

    # Contents ----------------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def collection(self) -> Any:
        from r1desk.engine.docs import store

        name = self.current
        return store.find_collection(self.db, name) if name else None

    def refresh(self, select: str | None = None) -> None:
        from r1desk.engine.docs import store

        wanted = select or self.current
        self.list.blockSignals(True)
        self.list.clear()
        for c in store.list_collections(self.db):
            item = QListWidgetItem(c.name, self.list)
            item.setData(Qt.ItemDataRole.UserRole, c.name)
            item.setIcon(theme.icon("documents", "muted"))
            if c.name == wanted:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None and self.list.count():
            self.list.setCurrentRow(0)
        self.list.blockSignals(False)
        self._show_collection()

    def _show_collection(self) -> None:
        from r1desk.engine.docs import store

        collection = self.collection()
        self.roots.blockSignals(True)
        self.roots.clear()
        self.problems.clear()
        if collection is None:
            self.heading.setText(self.tr("<h3>No collections yet</h3>Make a collection, then add folders or files "
                                         "to it: r1desk indexes them, and a conversation that uses the collection "
                                         "answers from them, citing the pages it used."))
            self.search_label.setText("")
            self.tabs.setTabText(1, self.tr("Problems"))
            self.roots.blockSignals(False)
            self._update_buttons()
            return
        stats = store.stats(self.db, collection)
        when = (self.tr("updated {when}").format(when=f"{datetime.fromtimestamp(collection.updated_at):%Y-%m-%d %H:%M}")
                if stats.documents else self.tr("not indexed yet"))
        self.heading.setText(
            f"<h3>{html.escape(collection.name)}</h3>"
            + html.escape(self.tr("{files} files indexed · {chunks} passages · {size} · {when}").format(
                files=f"{stats.indexed:,}", chunks=f"{stats.chunks:,}", size=human_bytes(stats.bytes), when=when)))
        if collection.embedding_model:
            text = self.tr("Searched by words and by meaning, with {model}.").format(
                model=model_name(collection.embedding_model))
            if stats.without_vectors:
                text += " " + self.tr("{n} files still wait for their vectors: index again.").format(
                    n=stats.without_vectors)
        else:
            default = self._default_embedding_model()
            if default:
                text = self.tr("Full-text search only so far. The next indexing adds vectors with {model}, so that "
                               "questions find passages in other words too.").format(model=Path(default).name)
            else:
                text = self.tr("Full-text search only: questions find passages that share their words. Download "
                               "the embedding model r1desk offers for Chinese and English, or choose a GGUF embedding "
                               "model file, to search by meaning as well.")
        self.search_label.setText(text)
        for root in collection.roots:
            item = QListWidgetItem(root.path, self.roots)
            item.setData(Qt.ItemDataRole.UserRole, root.path)
            item.setIcon(theme.icon("folder" if root.kind == "folder" else "source", "muted"))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if root.watched else Qt.CheckState.Unchecked)
            item.setToolTip(self.tr("Ticked: changes in it are indexed as they happen, while r1desk runs."))
            if not os.path.exists(root.path):
                item.setText(self.tr("{path} (not there: moved, or on a drive not connected)").format(path=root.path))
        self._fill_problems(store.documents(self.db, collection, status="problem"))
        self.tabs.setTabText(1, self.tr("Problems ({n})").format(n=stats.problems) if stats.problems
                             else self.tr("Problems"))
        self.roots.blockSignals(False)
        self._update_buttons()

    def _fill_problems(self, documents: list) -> None:
        self.problems.clear()
        for d in documents:
            item = QTreeWidgetItem(self.problems, [Path(d.path).name, problem_reason(d.problem, d.reason or "")])
            item.setToolTip(0, d.path)
            item.setToolTip(1, f"{problem_reason(d.problem, d.reason or '')}\n{d.reason or ''} [{d.problem}]")
            item.setData(0, Qt.ItemDataRole.UserRole, d.path)
        if not documents:
            item = QTreeWidgetItem(self.problems, [self.tr("Every file found could be read."), ""])
            item.setFlags(Qt.ItemFlag.NoItemFlags)

    def problem_rows(self) -> list[tuple[str, str]]:
        """(file name, reason as shown) for each file with a problem."""
        rows = []
        for i in range(self.problems.topLevelItemCount()):
            item = self.problems.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole):
                rows.append((item.text(0), item.text(1)))
        return rows

    def _default_embedding_model(self) -> str | None:
        from r1desk.engine.db.database import get_setting
        from r1desk.engine.docs.embedder import DEFAULT_SETTING

        return get_setting(self.db, DEFAULT_SETTING)

    def _update_buttons(self) -> None:
        busy = self.worker is not None
        has = self.current is not None
        self.delete_button.setEnabled(has and not busy)
        for b in (self.add_folder_button, self.add_files_button):
            b.setEnabled(has and not busy)
        self.remove_root_button.setEnabled(has and not busy and self.roots.currentItem() is not None)
        self.index_button.setEnabled(has and not busy and self.roots.count() > 0)
        self.cancel_button.setVisible(busy)
        self.model_button.setVisible(has)
        self.model_button.setEnabled(not busy)
        offer = self.embedding_offer()
        self.download_button.setVisible(has and offer is not None and not self._default_embedding_model())
        self.download_button.setEnabled(self.download is None)

    # Collections -------------------------------------------------------------------------
    def _ask_new(self) -> None:
        name, ok = QInputDialog.getText(self, self.tr("New collection"),
                                        self.tr("Name of the collection (for example: Work papers):"))
        if ok and name.strip():
            self.create(name)

    def create(self, name: str) -> bool:
        from r1desk.engine.docs import store
        from r1desk.engine.errors import R1deskError

        try:
            collection = store.create_collection(self.db, name)
        except R1deskError as exc:
            self._say(lambda exc=exc: user_message(exc), error=True)
            return False
        self.refresh(select=collection.name)
        self._say(lambda: self.tr("Made {name}: add folders or files to it.").format(name=collection.name))
        self.changed.emit()
        return True

    def ask_delete(self) -> QMessageBox | None:
        """Ask before deleting the chosen collection; the box is ``self.confirm`` until answered."""
        from r1desk.engine.docs import store

        collection = self.collection()
        if collection is None:
            return None
        stats = store.stats(self.db, collection)
        box = QMessageBox(QMessageBox.Icon.Warning, self.tr("Delete the collection"),
                          self.tr("Delete {name}? Its index ({files} files, {chunks} passages) is removed; your "
                                  "files stay as they are. Conversations that used it no longer answer from it.").format(
                              name=collection.name, files=stats.documents, chunks=stats.chunks),
                          QMessageBox.StandardButton.Cancel, self)
        yes = box.addButton(self.tr("Delete"), QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        name = collection.name
        box.buttonClicked.connect(lambda button: self.delete(name) if button is yes else None)
        box.finished.connect(lambda _r: setattr(self, "confirm", None))
        self.confirm = box
        box.open()
        return box

    def delete(self, name: str) -> bool:
        from r1desk.engine.docs import store
        from r1desk.engine.errors import R1deskError

        try:
            gone = store.delete_collection(self.db, name)
        except R1deskError as exc:
            self._say(lambda exc=exc: user_message(exc), error=True)
            return False
        self.refresh()
        self._say(lambda: self.tr("Deleted {name} ({files} files, {chunks} passages); your files are untouched.").format(
            name=name, files=gone.documents, chunks=gone.chunks))
        self.window_.documents.watch_changed()
        self.changed.emit()
        return True

    # Folders and files -------------------------------------------------------------------
    def _ask_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, self.tr("Add a folder"), str(Path.home()))
        if path:
            self.add_paths([path])

    def _ask_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, self.tr("Add files"), str(Path.home()),
            self.tr("Documents (*.pdf *.docx *.md *.markdown *.txt *.html *.htm *.csv *.rst *.log);;All files (*)"))
        if paths:
            self.add_paths(paths)

    def add_paths(self, paths: list[str]) -> GeneratorWorker | None:
        """Add folders or files to the chosen collection and index them."""
        if self.current is None:
            return None
        return self.index_now([str(p) for p in paths])

    def remove_selected_root(self) -> int:
        from r1desk.engine.docs import store

        item = self.roots.currentItem()
        collection = self.collection()
        if item is None or collection is None:
            return 0
        path = item.data(Qt.ItemDataRole.UserRole)
        removed = store.remove_root(self.db, collection, path)
        self._show_collection()
        self._say(lambda: self.tr("Took {path} out of {name}, with its {n} files; they stay on the disk.").format(
            path=path, name=collection.name, n=removed))
        self.window_.documents.watch_changed()
        self.changed.emit()
        return removed

    def _root_changed(self, item: QListWidgetItem) -> None:
        from r1desk.engine.docs import store

        collection = self.collection()
        if collection is None:
            return
        watched = item.checkState() == Qt.CheckState.Checked
        store.set_watched(self.db, collection, item.data(Qt.ItemDataRole.UserRole), watched)
        self.window_.documents.watch_changed()

    def _ask_embedding_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Choose an embedding model"), str(Path.home()),
                                              self.tr("GGUF models (*.gguf)"))
        if path:
            self.set_embedding_model(path)

    def embedding_offer(self) -> tuple[Any, str, int] | None:
        """(catalog entry, file, bytes) of the embedding model r1desk offers for Chinese and English."""
        from r1desk.engine.models import catalog

        try:
            entry = next(iter(catalog.load().embedding_models), None)
        except Exception:  # noqa: BLE001 - a damaged catalog: the offer is left out, not the panel
            log.exception("the catalog could not be read")
            return None
        chosen = entry.quant(entry.default_quant) if entry is not None and entry.default_quant else None
        if chosen is None or not chosen.files:
            return None
        return entry, chosen.files[0].name, sum(int(f.size or 0) for f in chosen.files)

    def download_embedding_model(self) -> Any:
        """Download the offered embedding model (as the model picker downloads), then index with it."""
        from r1desk.app.modelpicker import downloads

        offer = self.embedding_offer()
        if offer is None or self.download is not None:
            return None
        entry, filename, _size = offer
        job = self.download = downloads().start(entry.repo, filename, entry.name)
        job.progress.connect(self._download_progress)
        job.done.connect(self._downloaded)
        job.failed.connect(self._download_failed)
        job.cancelled.connect(self._download_cancelled)
        self._say(lambda: self.tr("Downloading {model}…").format(model=entry.name))
        self._update_buttons()
        return job

    def _download_progress(self, event: Any) -> None:
        if self.download is None:
            return
        name = self.download.label
        if event.total:
            self._say(lambda: self.tr("Downloading {model}… {done} of {total}").format(
                model=name, done=human_bytes(event.done), total=human_bytes(event.total)))

    def _downloaded(self, model: Any) -> None:
        self.download = None
        self.set_embedding_model(model.path)
        if self.current is not None and self.roots.count() and self.worker is None:
            self.index_now()  # the vectors of what is indexed already, without reading the files again

    def _download_failed(self, error: str) -> None:
        self.download = None
        self._say(lambda: self.tr("The embedding model could not be downloaded: {error}").format(error=error),
                  error=True)
        self._update_buttons()

    def _download_cancelled(self) -> None:
        self.download = None
        self._say(None)
        self._update_buttons()

    def set_embedding_model(self, path: str) -> None:
        """The embedding model collections are indexed with from the next indexing on."""
        from r1desk.engine.db.database import set_setting
        from r1desk.engine.docs.embedder import DEFAULT_SETTING

        set_setting(self.db, DEFAULT_SETTING, str(path))
        self._show_collection()
        self._say(lambda: self.tr("Collections are indexed with {model} from the next indexing on.").format(
            model=Path(path).name))

    # Indexing ----------------------------------------------------------------------------
    def index_now(self, paths: list[str] | None = None) -> GeneratorWorker | None:
        """Index the chosen collection (adding ``paths`` first) in a worker, with progress."""
        from r1desk.engine.events import CancelToken

        name = self.current
        if name is None or self.worker is not None:
            return None
        self.token = CancelToken()
        self.indexing = name
        self.last_event = None
        self.summary = None
        worker = self.worker = GeneratorWorker(index_job, self.db.path, name, list(paths or []), self.token,
                                               cancel=self.token.cancel)
        worker.yielded.connect(self._progressed)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.progress_label.setText(self.tr("Looking for files…"))
        self._say(None)
        self._update_buttons()
        worker.start()
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.cancel_button.setEnabled(False)
            self.progress_label.setText(self.tr("Stopping after the file being read…"))
            self.worker.quit()

    def _progressed(self, event: Any) -> None:
        if isinstance(event, EmbedderLoading):
            self.progress_label.setText(self.tr("Loading the embedding model {model}…").format(model=event.name))
            return
        self.last_event = event
        if event.phase == "done":
            self.summary = event.summary
            return
        if event.phase == "scan":
            self.progress.setRange(0, 0)
            self.progress_label.setText(self.tr("Looking for files… {n} found").format(n=f"{event.done:,}"))
            if self.current == self.indexing and event.done == 0:
                self._show_collection()  # the folders just added are listed at once
            return
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
        self.progress_label.setText(self.progress_text(event))
        if event.problem is not None and self.current == self.indexing:
            self._show_collection()

    def progress_text(self, event: Any) -> str:
        """"12 of 40 files · 35 passages/s · about 20 s left · reading notes.txt"."""
        parts = [self.tr("{done} of {total} files").format(done=f"{event.done:,}", total=f"{event.total or 0:,}")]
        if event.speed:
            parts.append(self.tr("{rate} passages/s").format(rate=f"{event.speed:.0f}" if event.speed >= 10
                                                              else f"{event.speed:.1f}"))
        # The first files say little of the rest: the time left shows once a few are done.
        if event.eta is not None and max(2, (event.total or 0) // 20) <= event.done < (event.total or 0):
            parts.append(self.tr("about {time} left").format(time=duration_text(event.eta)))
        if event.current:
            parts.append(Path(event.current).name)
        return " · ".join(parts)

    def summary_text(self, summary: Any) -> str:
        text = self.tr("Indexed in {time}: {added} new and {updated} changed files ({chunks} passages), {unchanged} "
                       "unchanged, {removed} gone.").format(
            time=duration_text(summary.seconds), added=summary.added, updated=summary.updated,
            chunks=summary.chunks, unchanged=summary.unchanged, removed=summary.removed)
        if summary.new_problems:
            text += " " + self.tr("{n} files could not be read: see Problems.").format(n=len(summary.new_problems))
        for fact in summary.facts:
            if fact.get("code") == "root-missing":
                text += " " + self.tr("{path} is not there (moved, or on a drive not connected): its files are "
                                      "kept.").format(path=fact.get("path", ""))
            elif fact.get("code") == "embedding-model-changed":
                text += " " + self.tr("The embedding model changed to {model}: every passage was embedded "
                                      "again.").format(model=model_name(fact.get("to")))
        return text

    def _failed(self, exc: BaseException) -> None:
        from r1desk.engine.errors import Cancelled

        if isinstance(exc, Cancelled):
            done = self.last_event.done if self.last_event is not None else 0
            self._say(lambda: self.tr("Indexing stopped. The {n} files done so far are kept; indexing again goes on "
                                      "from there.").format(n=done))
        else:
            self._say(lambda exc=exc: user_message(exc), error=True)

    def _finished(self) -> None:
        self.worker = None
        self.token = None
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(True)
        summary = self.summary
        if summary is not None:
            self.progress_label.setText(self.summary_text(summary))
            if summary.new_problems:
                self.tabs.setCurrentIndex(1)
        else:
            self.progress_label.setText("")
        self.refresh(select=self.indexing)
        self.indexing = None
        self._update_buttons()
        self.changed.emit()

    def watcher_event(self, collection: str, event: Any) -> None:
        """A watched folder's change was indexed: show it if that collection is on screen."""
        if event.phase == "done" and self.worker is None:
            if collection == self.current:
                self._show_collection()
            summary = event.summary
            if summary is not None and (summary.added or summary.updated or summary.removed or summary.new_problems):
                self._say(lambda: self.tr("{name}: a change in a watched folder was indexed ({added} new, {updated} "
                                          "changed, {removed} gone).").format(
                    name=collection, added=summary.added, updated=summary.updated, removed=summary.removed))

    # Words -------------------------------------------------------------------------------
    def _say(self, text: Any, *, error: bool = False) -> None:
        self._status_text = text
        self.status.setObjectName("MessageNotice" if error else "Muted")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setText(text() if callable(text) else (text or ""))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Documents"))
        self.list_title.setText(self.tr("Collections"))
        self.new_button.setText(self.tr("New…"))
        self.delete_button.setText(self.tr("Delete…"))
        self.model_button.setText(self.tr("Choose an embedding model…"))
        offer = self.embedding_offer()
        if offer is not None:
            self.download_button.setText(self.tr("Download {model} ({size})").format(
                model=offer[0].name, size=human_bytes(offer[2])))
            self.download_button.setToolTip(self.tr("An embedding model for Chinese and English: questions find "
                                                    "passages that say the same in other words"))
        self.tabs.setTabText(0, self.tr("Folders and files"))
        self.add_folder_button.setText(self.tr("Add a folder…"))
        self.add_files_button.setText(self.tr("Add files…"))
        self.remove_root_button.setText(self.tr("Remove"))
        self.watch_note.setText(self.tr("Tick a folder to watch it: while r1desk runs, files added, changed or "
                                        "deleted there are indexed without asking."))
        self.problems.setHeaderLabels([self.tr("File"), self.tr("Why it was not indexed")])
        self.index_button.setText(self.tr("Index now"))
        self.cancel_button.setText(self.tr("Cancel"))
        if self._status_text is not None:
            self._say(self._status_text, error=self.status.objectName() == "MessageNotice")
        self._show_collection()

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


# ---------------------------------------------------------------------------------------
# The conversation's choice, next to the message box.


class DocumentsButton(QToolButton):
    """"Documents": a menu of the collections, ticked for those this conversation answers from."""

    chosen_changed = Signal(list)  # names
    manage_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("DocumentsButton")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.setAutoRaise(True)
        self.setIconSize(QSize(18, 18))
        self.setFixedHeight(32)
        self.names: list[str] = []
        self.chosen: list[str] = []
        self.menu_ = QMenu(self)
        self.setMenu(self.menu_)
        self._fill()
        self.retranslate()

    def set_collections(self, names: list[str], chosen: list[str]) -> None:
        self.names = list(names)
        self.chosen = [n for n in chosen if n in self.names]
        self._fill()
        self.retranslate()

    def choose(self, name: str, on: bool) -> None:
        """Tick or untick one collection, as its menu item does."""
        chosen = [n for n in self.chosen if n != name]
        if on:
            chosen.append(name)
        self.chosen = [n for n in self.names if n in chosen]
        # The menu stays as it is (this may run inside one of its actions' signals): only the ticks change.
        for n, action in self.actions_.items():
            action.blockSignals(True)
            action.setChecked(n in self.chosen)
            action.blockSignals(False)
        self.retranslate()
        self.chosen_changed.emit(list(self.chosen))

    def _fill(self) -> None:
        self.menu_.clear()
        self.actions_: dict[str, QAction] = {}
        self.header = self.menu_.addAction("")
        self.header.setEnabled(False)
        for name in self.names:
            action = self.menu_.addAction(name)
            action.setCheckable(True)
            action.setChecked(name in self.chosen)
            action.toggled.connect(lambda on, n=name: self.choose(n, on))
            self.actions_[name] = action
        self.menu_.addSeparator()
        self.manage = self.menu_.addAction("")
        self.manage.triggered.connect(self.manage_requested)

    def retranslate(self) -> None:
        on = bool(self.chosen)
        self.setIcon(theme.icon("documents", "accent" if on else "muted"))
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon if on
                                else Qt.ToolButtonStyle.ToolButtonIconOnly)
        if len(self.chosen) == 1:
            self.setText(self.chosen[0] if len(self.chosen[0]) <= 18 else self.chosen[0][:17] + "…")
        else:
            self.setText(str(len(self.chosen)) if on else "")
        if on:
            self.setToolTip(self.tr("Answers come from your documents: {names}").format(names=", ".join(self.chosen)))
        else:
            self.setToolTip(self.tr("Answer from your documents: choose collections"))
        self.header.setText(self.tr("Answer from:") if self.names else self.tr("No collections yet"))
        self.manage.setText(self.tr("Manage documents…"))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.LanguageChange, QEvent.Type.PaletteChange):
            self.retranslate()
        super().changeEvent(event)


# ---------------------------------------------------------------------------------------
# The window's part.


class Documents(QObject):
    """What the main window does with documents: the header button and panel, the
    conversation's choice next to the message box, the watched folders, the sources of replies."""

    def __init__(self, window: Any):
        super().__init__(window)
        self.window_ = window
        self.chat = window.chat
        self.db = window.history.db
        self.dialog: DocumentsDialog | None = None
        self.viewer: Any = None
        self.pending: list[str] = []  # chosen before the conversation exists
        self.header_button = QToolButton(window.top_bar)
        self.header_button.setIconSize(QSize(20, 20))
        self.header_button.clicked.connect(self.show_panel)
        self.header_button.installEventFilter(self)
        bar = window.top_bar.layout()
        bar.insertWidget(bar.indexOf(window.adapters_button), self.header_button)
        self.button = DocumentsButton(window.composer)
        self.button.chosen_changed.connect(self.set_chosen)
        self.button.manage_requested.connect(self.show_panel)
        window.composer.add_tool(self.button)
        window.chat_view.source_requested.connect(self.open_source)
        self.watch = DocumentWatch(self.db.path, self)
        self.watch.indexed.connect(self._watched)
        self.watch.failed.connect(lambda name, exc: log.warning("indexing a watched folder of %s failed: %s", name, exc))
        self.retranslate()
        self.conversation_changed(None)

    # The conversation's collections --------------------------------------------------------
    def names(self) -> list[str]:
        from r1desk.engine.docs import store

        return [c.name for c in store.list_collections(self.db)]

    def conversation_changed(self, conversation_id: int | None) -> None:
        """Another conversation is shown (None: a new one): its choice in the button."""
        if conversation_id is None:
            chosen = self.pending
        else:
            self.pending = []
            chosen = self.chat.collections(conversation_id)
        self.button.set_collections(self.names(), chosen)

    def set_chosen(self, names: list[str]) -> None:
        cid = self.window_.current_id
        if cid is None:
            self.pending = list(names)
            return
        from r1desk.engine.errors import R1deskError

        try:
            self.chat.set_collections(cid, names)
        except R1deskError as exc:
            self.window_.notice.show_message(lambda exc=exc: user_message(exc), kind="error")
            self.conversation_changed(cid)

    def conversation_for(self, system: str | None) -> int | None:
        """Before a new conversation's first message: made now when documents were chosen for
        it, so that message is answered from them (with ``system``, its system prompt)."""
        if not self.pending:
            return None
        info = self.chat.loaded
        cid = self.window_.history.create_conversation(model=info.name if info is not None else None)
        if system and system.strip():
            self.window_.history.set_system_prompt(cid, system)
        self.chat.set_collections(cid, self.pending)
        self.pending = []
        return cid

    def _collections_changed(self) -> None:
        self.conversation_changed(self.window_.current_id)

    # The panel ---------------------------------------------------------------------------
    def show_panel(self) -> DocumentsDialog:
        if self.dialog is None:
            self.dialog = DocumentsDialog(self.window_)
            self.dialog.changed.connect(self._collections_changed)
        else:
            self.dialog.refresh()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    # Watched folders ---------------------------------------------------------------------
    def start(self) -> None:
        """At start: watch the folders marked for watching, if any."""
        from r1desk.engine.docs import store

        if any(r.watched for c in store.list_collections(self.db) for r in c.roots):
            self.watch.restart()

    def watch_changed(self) -> None:
        self.watch.restart()

    def _watched(self, collection: str, event: Any) -> None:
        if self.dialog is not None:
            self.dialog.watcher_event(collection, event)

    def shut_down(self) -> None:
        if self.dialog is not None and self.dialog.worker is not None:
            self.dialog.worker.quit()
        self.watch.shut_down()

    # Sources of replies ------------------------------------------------------------------
    def sources_of(self, message_id: int) -> list[Any]:
        return self.chat.sources(message_id)

    def show_sources(self, widget: Any, sources: list[Any]) -> None:
        """A reply's sources under it, each with the passage that matched the question (when the
        index still has it) as the excerpt shown on hover."""
        from r1desk.engine.docs import store

        if not sources:
            return
        ids = [s.chunk_id for s in sources if getattr(s, "chunk_id", None) is not None]
        chunks = store.chunks_by_id(self.db, ids) if ids else {}
        focus = {s.n: chunks[s.chunk_id].text for s in sources if getattr(s, "chunk_id", None) in chunks}
        widget.set_sources(sources, focus)

    def open_source(self, source: Any) -> Any:
        """Open a reply's source at its place (the viewer, or the system's viewer); a file that
        is gone is said to be gone."""
        from r1desk.app.sources import missing_text, open_source
        from r1desk.engine.docs import store

        chunk_id = getattr(source, "chunk_id", None)
        focus = store.chunks_by_id(self.db, [chunk_id]).get(chunk_id) if chunk_id is not None else None
        self.viewer, problem = open_source(source, self.viewer, self.window_, focus)
        if problem is not None:
            gone = problem == missing_text(source)
            self.window_.notice.show_message((lambda: missing_text(source)) if gone else problem, kind="error")
        return self.viewer

    # Words -------------------------------------------------------------------------------
    def retranslate(self) -> None:
        from r1desk.app.i18n import translate

        self.header_button.setIcon(theme.icon("documents"))
        self.header_button.setToolTip(translate("Documents", "Documents: folders and files conversations can answer "
                                                             "from"))

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if obj is self.header_button and event.type() in (QEvent.Type.LanguageChange, QEvent.Type.PaletteChange):
            self.retranslate()
        return False
