"""Words for engine errors in the user's language: a translated headline per kind, then the detail.

The engine's messages name files, sizes and settings precisely but are English; each kind of
error gets a translated sentence in front, so a Chinese user reads what happened and what to do.
"""

from __future__ import annotations

from r1desk.app.i18n import translate


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


def describe(kind: str, detail: str, *, downloaded: bool = False) -> str:
    """The headline (when the kind is known) followed by the engine's own detail.

    ``downloaded``: the damaged file is one r1desk downloaded, so downloading it again helps.
    """
    head = headline(kind)
    if head and downloaded:
        head += " " + translate("Errors", "Download it again from the model picker.")
    return f"{head} {detail}" if head else detail


def user_message(exc: BaseException) -> str:
    """Words for an exception: an engine error's own line, or a short note for a bug."""
    from r1desk.engine.errors import R1deskError

    if isinstance(exc, R1deskError):
        hint = f" ({exc.hint})" if getattr(exc, "hint", None) else ""
        return describe(type(exc).__name__, f"{exc}{hint}", downloaded=getattr(exc, "downloaded", False))
    return translate("Errors", "Something went wrong inside r1desk ({kind}: {error}). Details are in the log.").format(
        kind=type(exc).__name__, error=str(exc)[:200])
