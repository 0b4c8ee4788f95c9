"""Words for engine errors in the user's language: a translated headline per kind, then the detail.

The engine's messages name files, sizes and settings precisely but are English; each kind of
error gets a translated sentence in front, so a Chinese user reads what happened and what to do.
"""

from __future__ import annotations

from pathlib import Path

from r1desk.app.i18n import translate
from r1desk.engine.units import human_bytes


def headline(kind: str) -> str | None:
    """A translated sentence for an engine error class name, or None for an unknown kind."""
    texts = {
        "CorruptModel": translate("Errors", "The model file is damaged or incomplete."),
        "NotAModel": translate("Errors", "This file is not a GGUF model."),
        "ModelNotFound": translate("Errors", "The model file was not found."),
        "ModelLoadFailed": translate("Errors", "The model could not be loaded."),
        "HostCrashed": translate("Errors", "The model stopped unexpectedly; it starts again with the next message."),
        "TemplateError": translate("Errors", "The model's chat template could not be used."),
        "NotEnoughMemory": translate("Errors", "There is not enough memory for this model with these settings."),
        "ContextOverflow": translate("Errors", "The message is too long for the model's context."),
        "DatabaseError": translate("Errors", "The chat history database cannot be used."),
        "NotFound": translate("Errors", "That item no longer exists."),
        "Offline": translate("Errors", "The model hub cannot be reached; check the network or use a mirror."),
        "DiskFull": translate("Errors", "There is not enough free disk space."),
        "DownloadError": translate("Errors", "The download failed and was not used."),
        "ConversionError": translate("Errors", "The model could not be converted."),
    }
    return texts.get(kind)


def from_facts(kind: str, facts: dict) -> str | None:
    """The whole message in the current language, when the engine gave the facts to word it."""
    worded = _from_code(facts)
    if worded is not None:
        return worded
    cause = facts.get("cause")
    if kind == "Offline" and cause:
        why = {
            "dns": translate("Errors", "its name could not be looked up"),
            "refused": translate("Errors", "it refused the connection"),
            "timeout": translate("Errors", "it did not answer in time"),
            "tls": translate("Errors", "the secure connection failed"),
            "reset": translate("Errors", "the connection was cut"),
            "unreachable": translate("Errors", "the network cannot reach it"),
            "proxy": translate("Errors", "the proxy refused the connection"),
            "server": translate("Errors", "it is not working right now"),
        }.get(cause, translate("Errors", "the connection failed"))
        server = facts.get("endpoint", "")
        text = translate("Errors", "The download server {server} cannot be reached: {why}.").format(server=server, why=why)
        if facts.get("mirror"):
            advice = translate("Errors", "It is the server set in Settings › Downloads: check its address there, "
                                         "or clear it to use huggingface.co.")
        else:
            advice = translate("Errors", "Check the network connection, or set a mirror such as "
                                         "https://hf-mirror.com in Settings › Downloads.")
        return f"{text} {advice}"
    if kind == "HostCrashed" and cause:
        why = {
            "out-of-memory": translate("Errors", "the system ran out of memory and ended it"),
            "killed": translate("Errors", "another program or the user ended it"),
            "abort": translate("Errors", "llama.cpp stopped on an internal error"),
            "crash": translate("Errors", "llama.cpp crashed"),
            "hung": translate("Errors", "it stopped answering"),
        }.get(cause, translate("Errors", "it ended ({how})").format(how=facts.get("signal") or facts.get("code")))
        return translate("Errors", "The model stopped unexpectedly: {why}. It starts again with the next message.").format(
            why=why)
    return None


def _from_code(facts: dict) -> str | None:
    code = facts.get("code")
    name = Path(str(facts.get("file", ""))).name
    if code == "not-gguf":
        what = {
            "text": translate("Errors", "it is a text file"),
            "html": translate("Errors", "it is a web page, perhaps an error page saved instead of the download"),
            "safetensors": translate("Errors", "it is a safetensors file: convert the model to GGUF first"),
            "zip": translate("Errors", "it is a ZIP archive, as PyTorch checkpoints are: convert the model to GGUF first"),
            "pickle": translate("Errors", "it is a Python pickle, which r1desk never loads"),
            "folder": translate("Errors", "it is a folder"),
            "short": translate("Errors", "it is too short to be one"),
            "adapter": translate("Errors", "it is a LoRA adapter: load it on top of a model"),
        }.get(facts.get("what"), translate("Errors", "it does not start with the GGUF signature"))
        return translate("Errors", "{file} is not a GGUF model: {what}.").format(file=name, what=what)
    if code == "no-file":
        return translate("Errors", "The model file {file} was not found; it may have been moved or deleted.").format(
            file=facts.get("file", ""))
    if code == "truncated":
        size, expected = int(facts.get("size", 0)), int(facts.get("expected", 0)) or 1
        return translate("Errors", "{file} is incomplete: it has {size} of {expected} ({pct}%).").format(
            file=name, size=human_bytes(size), expected=human_bytes(expected), pct=f"{100 * size / expected:.0f}")
    if code == "too-big":
        return translate("Errors", "There is not enough memory for this model with these settings: it needs {need}, "
                                   "and {have} can be used. Try a smaller model or quantisation, or a shorter context "
                                   "in Settings.").format(need=human_bytes(facts.get("need")),
                                                          have=human_bytes(facts.get("have")))
    if code == "too-long":
        tokens, n_ctx, trained = facts.get("tokens", 0), facts.get("n_ctx", 0), facts.get("n_ctx_train", 0)
        text = translate("Errors", "The message is {tokens} tokens, but the model's context holds {n_ctx}.").format(
            tokens=f"{tokens:,}", n_ctx=f"{n_ctx:,}")
        if trained > n_ctx:
            return text + " " + translate("Errors", "Shorten it, or raise the context length in Settings (this model "
                                                    "was trained for {trained} tokens).").format(trained=f"{trained:,}")
        return text + " " + translate("Errors", "Shorten it: this is the longest context the model was trained for.")
    if code == "disk-full":
        return translate("Errors", "There is not enough free disk space in {folder}: the download needs {need}, and "
                                   "{free} is free. Free some space, or choose another download folder in Settings › "
                                   "Downloads.").format(folder=facts.get("folder", ""),
                                                        need=human_bytes(facts.get("need")),
                                                        free=human_bytes(facts.get("free")))
    return None


def describe(kind: str, detail: str, *, downloaded: bool = False, facts: dict | None = None) -> str:
    """The message for an engine error in the current language.

    From the error's facts when the engine gave them; otherwise a translated headline per kind,
    then the engine's own detail. ``downloaded``: the damaged file is one r1desk downloaded, so
    downloading it again helps.
    """
    again = translate("Errors", "Download it again from the model picker.") if downloaded else ""
    worded = from_facts(kind, facts or {})
    if worded is not None:
        return f"{worded} {again}".strip()
    head = headline(kind)
    if head and again:
        head += " " + again
    return f"{head} {detail}" if head else detail


def user_message(exc: BaseException) -> str:
    """Words for an exception: an engine error's own line, or a short note for a bug."""
    from r1desk.engine.errors import R1deskError

    if isinstance(exc, R1deskError):
        # The engine's hints are the command line's advice (flags, commands): a window gives its own.
        return describe(type(exc).__name__, str(exc), downloaded=getattr(exc, "downloaded", False),
                        facts=getattr(exc, "facts", None))
    return translate("Errors", "Something went wrong inside r1desk ({kind}: {error}). Details are in the log.").format(
        kind=type(exc).__name__, error=str(exc)[:200])
