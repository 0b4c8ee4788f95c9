"""Models on other machines, added by the user as sources: a name, an OpenAI-compatible URL, its key.

Kept in the database's settings (``remotes``), so the app and the command line see the same
list; the key is stored as given, like the hub token, in the user's own data folder.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from r1desk.engine.db.database import get_setting, open_db, set_setting
from r1desk.engine.errors import ModelNotFound, R1deskError

SETTING = "remotes"


@dataclass
class Remote:
    name: str
    url: str
    api_key: str | None = None
    model: str | None = None  # the server's model id; None: the first it lists

    def to_dict(self, *, show_key: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not show_key and self.api_key:
            out["api_key"] = self.api_key[:3] + "…"
        return out


def _db(db=None):
    return db if db is not None else open_db()


def remotes(db=None) -> list[Remote]:
    stored = get_setting(_db(db), SETTING, {}) or {}
    return [Remote(name=name, **fields) for name, fields in sorted(stored.items())]


def get(name: str, db=None) -> Remote | None:
    return next((r for r in remotes(db) if r.name == name), None)


def add(name: str, url: str, *, api_key: str | None = None, model: str | None = None, db=None) -> Remote:
    from r1desk.engine.inference.remote import normalise_url

    if not re.fullmatch(r"[\w.-]{1,64}", name):
        raise R1deskError(f"{name!r} is not a name for a remote model (letters, digits, . _ -)",
                          facts={"code": "remote-bad-name"})
    remote = Remote(name, normalise_url(url), api_key or None, model or None)
    db = _db(db)
    stored = dict(get_setting(db, SETTING, {}) or {})
    stored[name] = {k: v for k, v in asdict(remote).items() if k != "name"}
    set_setting(db, SETTING, stored)
    return remote


def remove(name: str, db=None) -> None:
    db = _db(db)
    stored = dict(get_setting(db, SETTING, {}) or {})
    if name not in stored:
        raise ModelNotFound(f"no remote model named {name!r}", facts={"code": "remote-unknown", "name": name})
    del stored[name]
    set_setting(db, SETTING, stored)
