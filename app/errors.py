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
    if code == "no-folder":
        return translate("Errors", "There is no folder {path}.").format(path=facts.get("path", ""))
    if code == "is-folder":
        return translate("Errors", "{path} is a folder: give a file name.").format(path=facts.get("path", ""))
    if code == "write-disk-full":
        return translate("Errors", "The disk is full: {path} was not written.").format(path=facts.get("path", ""))
    return (_hub_words(code, facts) or _template_words(code, facts) or _database_words(code, facts)
            or _collection_words(code, facts))


def _hub_words(code: str | None, facts: dict) -> str | None:
    """The hub's refusals: gated or private, no such repo or file, rate limit, server error."""
    if code is None or not code.startswith("hub-"):
        return None
    server, repo = facts.get("endpoint", ""), facts.get("repo", "")
    token = bool(facts.get("token"))
    if code == "hub-gated":
        if token:
            return translate("Errors", "{repo} is gated, and the access token in Settings › Downloads does not give "
                                       "access to it: accept the model's terms on its page on the hub, signed in as "
                                       "the account the token belongs to.").format(repo=repo)
        return translate("Errors", "{repo} is gated: accept the model's terms on its page on the hub, then enter "
                                   "your access token in Settings › Downloads.").format(repo=repo)
    if code == "hub-no-repo":
        if token:
            return translate("Errors", "There is no model {repo} on {server}, or the access token in Settings › "
                                       "Downloads cannot read it: check the name.").format(repo=repo, server=server)
        return translate("Errors", "There is no model {repo} on {server}, or it is private: check the name, or enter "
                                   "an access token that can read it in Settings › Downloads.").format(
            repo=repo, server=server)
    if code == "hub-no-revision":
        return translate("Errors", "{repo} on {server} has no such branch, tag or commit.").format(
            repo=repo, server=server)
    if code == "hub-no-file":
        return translate("Errors", "{repo} on {server} has no file {file}; it may have been renamed or removed. "
                                   "Look the model up again and choose a file it has.").format(
            repo=repo, server=server, file=facts.get("file", ""))
    if code == "hub-denied":
        advice = (translate("Errors", "The access token in Settings › Downloads does not give access to it.") if token
                  else translate("Errors", "It may need an access token: enter one in Settings › Downloads."))
        return translate("Errors", "{server} refused {what} (HTTP {status}).").format(
            server=server, what=facts.get("what", repo), status=facts.get("status")) + " " + advice
    if code == "hub-rate-limit":
        text = translate("Errors", "{server} is limiting how often it is asked (HTTP 429).").format(server=server)
        wait = facts.get("wait")
        if isinstance(wait, int) and wait > 0:
            again = (translate("Errors", "Try again in a second.") if wait == 1
                     else translate("Errors", "Try again in {n} seconds.").format(n=f"{wait:,}"))
            return f"{text} {again}"
        return text + " " + translate("Errors", "Try again in a few minutes.")
    if code == "hub-server":
        text = translate("Errors", "The download server {server} is not working right now (HTTP {status}).").format(
            server=server, status=facts.get("status"))
        if facts.get("mirror"):
            advice = translate("Errors", "Try again later, or clear the server in Settings › Downloads to use "
                                         "huggingface.co.")
        else:
            advice = translate("Errors", "Try again later, or set a mirror such as https://hf-mirror.com in "
                                         "Settings › Downloads.")
        return f"{text} {advice}"
    if code == "hub-refused":
        return translate("Errors", "{server} refused {what} (HTTP {status}).").format(
            server=server, what=facts.get("what", repo), status=facts.get("status"))
    if code == "hub-not-a-hub":
        return translate("Errors", "{server} does not answer like a Hugging Face hub: check the download server's "
                                   "address in Settings › Downloads.").format(server=server)
    return None


def _template_words(code: str | None, facts: dict) -> str | None:
    """A chat template that would not render: the template's own words stay in the log."""
    if code == "template-unsafe":
        return translate("Errors", "The model's chat template tried something unsafe and was stopped. The model file "
                                   "may have been tampered with: use one from a source you trust.")
    if code == "template-refused":
        return translate("Errors", "The model's chat template refused this conversation. Some models accept no system "
                                   "prompt, or only turns that alternate between you and the model: remove the "
                                   "system prompt (the conversation's menu in the sidebar, or Settings › Chat for new "
                                   "conversations), or start a new conversation.")
    if code == "template-failed":
        return translate("Errors", "The model's chat template failed while writing the prompt: the template in this "
                                   "model file is faulty. Try another file of this model.")
    if code == "template-too-slow":
        return translate("Errors", "The model's chat template took more than {seconds} seconds to write the prompt "
                                   "and was stopped: the template in this model file is faulty. Try another file "
                                   "of this model.").format(seconds=f"{float(facts.get('seconds', 0)):.0f}")
    if code == "template-too-long":
        return translate("Errors", "The model's chat template made a prompt of more than {limit} characters and was "
                                   "stopped: the template in this model file is faulty.").format(
            limit=f"{int(facts.get('limit', 0)):,}")
    return None


def _database_words(code: str | None, facts: dict) -> str | None:
    """The history database's failures: in use, full disk, read-only, damaged, from a newer r1desk."""
    if code is None or not code.startswith("db-"):
        return None
    file = facts.get("file", "")
    texts = {
        "db-locked": translate("Errors", "The chat history database {file} is in use by another program: close it "
                                         "(or the other r1desk) and try again."),
        "db-disk-full": translate("Errors", "The disk that holds {file} is full, so the last change was not saved. "
                                            "Free some space and try again."),
        "db-folder-read-only": translate("Errors", "The folder of the chat history database {file} is read-only, so "
                                                   "the database cannot be used. Check the folder's permissions."),
        "db-read-only": translate("Errors", "The chat history database {file} is read-only: conversations can be "
                                            "read, but changes are not saved. Check the permissions of the file and "
                                            "its folder."),
        "db-damaged": translate("Errors", "The chat history database {file} is damaged. Restore it from a backup, or "
                                          "move it away to start with an empty history."),
        "db-io": translate("Errors", "The chat history database {file} cannot be read or written: check the disk."),
        "db-cant-open": translate("Errors", "The chat history database {file} cannot be opened: check that its "
                                            "folder exists and can be written."),
        "db-newer": translate("Errors", "The chat history database {file} was written by a newer version of r1desk: "
                                        "update r1desk to open it."),
    }
    text = texts.get(code)
    return text.format(file=file) if text is not None else None


def problem_reason(code: str | None, reason: str = "") -> str:
    """Why a document could not be indexed, in the user's language (``extract.PROBLEMS`` codes);
    the engine's own line for a code it does not know."""
    texts = {
        "unsupported": translate("Errors", "Not a kind of file r1desk reads."),
        "binary": translate("Errors", "Named as text, but it holds binary data (a program, an image or an archive)."),
        "undecodable": translate("Errors", "Its text is in no encoding r1desk recognises."),
        "encrypted": translate("Errors", "It is locked with a password."),
        "corrupt": translate("Errors", "It is damaged or cut short, or not what its name says."),
        "too-large": translate("Errors", "It is too big, or would unpack to far more than its size (a zip or PDF "
                                         "bomb)."),
        "no-text": translate("Errors", "It holds no text to index: it is empty, or a scan without a text layer."),
        "timeout": translate("Errors", "Reading it took too long, so it was stopped. It is tried again at the next "
                                       "indexing."),
        "too-much-memory": translate("Errors", "Reading it needed too much memory, so it was stopped. It is tried "
                                               "again at the next indexing."),
        "crashed": translate("Errors", "The reader crashed on it; the other files were read. It is tried again at "
                                       "the next indexing."),
        "unreadable": translate("Errors", "The system does not let r1desk read it (permissions, or a disk error)."),
        "symlink-loop": translate("Errors", "It is a link that leads back to itself."),
        "vanished": translate("Errors", "It was deleted or moved while it was indexed, or it is a link to nowhere."),
    }
    return texts.get(code or "", reason)


def _collection_words(code: str | None, facts: dict) -> str | None:
    """The document index's refusals: a bad name, a missing collection, folder or embedding model."""
    if code == "bad-collection-name":
        return translate("Errors", "A collection needs a name of at most 100 characters, without control "
                                   "characters.")
    if code == "no-such-collection":
        return translate("Errors", "There is no collection named {name}; it may have been deleted.").format(
            name=facts.get("name", ""))
    if code == "no-such-path":
        if facts.get("path"):
            return translate("Errors", "{path} does not exist (any more).").format(path=facts["path"])
        return translate("Errors", "The collection has no folders or files yet: add some to index.")
    if code == "not-embedding-model":
        return translate("Errors", "{model} is not an embedding model: choose a GGUF embedding model, or index "
                                   "for full-text search only.").format(model=facts.get("model", ""))
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
