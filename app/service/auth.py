"""Who is calling: an API key (`Authorization: Bearer <key>`) or the trusted sign-in proxy of `AppSettings`.

Keys: `new_key` makes a high-entropy token (`sr-` + 43 url-safe characters, 256 bits), records only its
sha256 in the store (`Store.create_api_key`) and returns the token, which is shown once. A request's key is
hashed and looked up by that hash, and the stored hash compared again in constant time. A revoked or
unknown key is refused (401) exactly like a missing one.

Proxy: with `app.groups_header` and `app.proxy_secret` set, a request that proves it came through the proxy
(app.ui.services.resolve_user: the secret, once, in constant time) has the header's groups, and edits when
one of them is in `app.editor_groups`. A key, when sent, wins over the headers.

Groups in use: a request may narrow its groups (a `groups` field or query parameter, a subset of the
caller's), never widen them: a group the caller lacks is a 403. No caller, no groups: 401, before anything
else is read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Sequence

from fastapi import Request

from app.ui.services import ANONYMOUS, User, resolve_user
from pipeline.errors import ConfigError
from pipeline.groups import parse_groups
from pipeline.schema import ApiKey
from pipeline.store import Store

from .errors import ApiError

KEY_PREFIX = "sr-"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(store: Store, name: str, groups: Sequence[str] | str, *, editor: bool = False) -> tuple[ApiKey, str]:
    """Make a key for `name` with these groups; returns its record and the key itself (never stored)."""
    parsed = parse_groups(groups, what="key groups")
    token = KEY_PREFIX + secrets.token_urlsafe(32)
    return store.create_api_key(name, hash_key(token), parsed, editor=editor), token


def _bearer(request: Request) -> str | None:
    values = request.headers.getlist("authorization")
    if len(values) != 1:
        return None
    scheme, _, token = values[0].partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def caller(request: Request) -> User:
    """The caller of this request, or 401. (A FastAPI dependency.)"""
    services = request.app.state.services
    token = _bearer(request)
    if token is not None:
        digest = hash_key(token)
        row = services.store.api_key_by_hash(digest)
        if row is None or not hmac.compare_digest(row.key_hash, digest) or not row.active:
            raise ApiError(401, "this API key is not valid (unknown or revoked); ask an operator for a key "
                                "(`sculptrag keys create`)", headers={"WWW-Authenticate": "Bearer"})
        return User(name=row.name, groups=row.group_names, editor=row.editor, source="api key")
    settings = services.settings
    if settings.app.header_mode:
        user = resolve_user(settings, request.headers.items())
        if user.name != ANONYMOUS:
            return user
    raise ApiError(401, "no API key: send 'Authorization: Bearer <key>' (an operator makes keys with "
                        "`sculptrag keys create`)", headers={"WWW-Authenticate": "Bearer"})


def editor(request: Request) -> User:
    """The caller, who must be allowed to edit (ingest, upload, delete), or 403."""
    user = caller(request)
    if not user.editor:
        raise ApiError(403, "this route is for editors: use a key made with `sculptrag keys create --editor` "
                            "(behind the proxy: a group in SCULPTRAG_APP__EDITOR_GROUPS)")
    return user


def groups_in_use(user: User, asked: Sequence[str] | str | None) -> tuple[str, ...]:
    """The caller's groups, or the subset `asked` names; a group the caller lacks is a 403, never granted."""
    if asked is None or (not isinstance(asked, str) and len(asked) == 0):
        return user.groups
    wanted, outside = held_groups(user, asked)
    if outside:
        raise ApiError(403, f"you may narrow your groups, not widen them: {', '.join(outside)} "
                            f"{'is' if len(outside) == 1 else 'are'} not among this key's groups; leave 'groups' out "
                            "to use all of them")
    return wanted


def held_groups(user: User, groups: Sequence[str] | str) -> tuple[tuple[str, ...], list[str]]:
    """`groups` parsed (a malformed one is a 422), and those of them the caller does not hold."""
    try:
        parsed = parse_groups(groups, what="groups")
    except ConfigError as e:
        raise ApiError(422, str(e)) from e
    return parsed, sorted(set(parsed) - set(user.groups))
