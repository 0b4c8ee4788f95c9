"""The status bar: which model is loaded, how much context is used, speed, memory in use."""

from __future__ import annotations

import os

import psutil

from r1desk.app.qt import QEvent, QLabel, QStatusBar, QTimer, QWidget
from r1desk.engine.units import human_bytes

MEMORY_INTERVAL_MS = 2000


def memory_in_use(extra_pids: tuple[int, ...] = ()) -> int:
    """Resident memory of r1desk and its children (the model process among them), in bytes."""
    total = 0
    seen: set[int] = set()
    try:
        me = psutil.Process(os.getpid())
        procs = [me, *me.children(recursive=True)]
    except psutil.Error:
        return 0
    for pid in extra_pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    for proc in procs:
        if proc.pid in seen:
            continue
        seen.add(proc.pid)
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total



class StatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.model_label = QLabel(self)
        self.context_label = QLabel(self)
        self.speed_label = QLabel(self)
        self.memory_label = QLabel(self)
        self.addWidget(self.model_label, 1)
        for label in (self.context_label, self.speed_label, self.memory_label):
            self.addPermanentWidget(label)
        self.model_name: str | None = None
        self.loading: str | None = None
        self.reload_reason: tuple[str, str] | None = None  # (reason, detail) of a reload before a reply
        self.queued: int | None = None  # requests ahead of this window's reply
        self.context: tuple[int, int] | None = None  # (used, n_ctx)
        self.tokens_per_second: float | None = None
        self.memory: int | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(MEMORY_INTERVAL_MS)
        self._timer.timeout.connect(self.update_memory)
        self._timer.start()
        self.update_memory()

    def set_model(self, name: str | None, n_ctx: int | None = None) -> None:
        self.model_name = name
        self.loading = None
        self.context = (0, n_ctx) if n_ctx else None
        self.tokens_per_second = None
        self.retranslate()

    def set_loading(self, name: str | None, reason: str | None = None, detail: str = "") -> None:
        """A model is loading; ``reason`` (an engine ``Loading`` reason) when it is a reload."""
        self.loading = name
        self.reload_reason = (reason, detail) if reason else None
        self.retranslate()

    def set_queued(self, position: int | None) -> None:
        self.queued = position or None
        self.retranslate()

    def clear_wait(self) -> None:
        """The reply has begun: no longer reloading or waiting."""
        if self.loading or self.queued:
            self.loading = self.reload_reason = self.queued = None
            self.retranslate()

    def reload_words(self) -> str:
        reason, detail = self.reload_reason or ("", "")
        if reason == "unresponsive":
            return self.tr("it did not stop in time and was restarted")
        if reason == "template-timeout":
            return self.tr("its chat template took too long and it was restarted")
        if detail:
            return self.tr("the model process stopped ({detail})").format(detail=detail)
        return self.tr("the model process stopped")

    def set_context_used(self, used: int | None) -> None:
        """Tokens of the open conversation in the model's context (None: nothing to show)."""
        n_ctx = self.context[1] if self.context else None
        self.context = (int(used or 0), n_ctx) if n_ctx else None
        self._show_context()

    def set_reply_stats(self, stats: dict) -> None:
        if stats.get("n_ctx"):
            self.context = (int(stats.get("context_used") or 0), int(stats["n_ctx"]))
        if stats.get("tokens_per_second"):
            self.tokens_per_second = float(stats["tokens_per_second"])
        self.retranslate()

    def update_memory(self) -> None:
        self.memory = memory_in_use()
        self.retranslate()

    def retranslate(self) -> None:
        if self.loading and self.reload_reason:
            self.model_label.setText(self.tr("Reloading {model}: {why}…").format(
                model=self.loading, why=self.reload_words()))
        elif self.loading:
            self.model_label.setText(self.tr("Loading {model}…").format(model=self.loading))
        elif self.queued:
            self.model_label.setText(self.tr("Waiting for the model: {n} request(s) ahead").format(n=self.queued))
        elif self.model_name:
            self.model_label.setText(self.tr("Model: {model}").format(model=self.model_name))
        else:
            self.model_label.setText(self.tr("No model loaded"))
        self._show_context()
        self.context_label.setToolTip(self.tr("Tokens of the conversation the model holds in its context"))
        if self.tokens_per_second:
            self.speed_label.setText(self.tr("{tps} tokens/s").format(tps=f"{self.tokens_per_second:.1f}"))
        else:
            self.speed_label.setText("")
        if self.memory:
            self.memory_label.setText(self.tr("Memory {size}").format(size=human_bytes(self.memory)))
        self.memory_label.setToolTip(self.tr("Memory used by r1desk and its model process"))

    def _show_context(self) -> None:
        if self.context:
            used, total = self.context
            self.context_label.setText(self.tr("Context {used} / {total}").format(
                used=f"{used:,}", total=f"{total:,}"))
        else:
            self.context_label.setText("")

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
