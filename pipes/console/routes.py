"""The console as an aiohttp application, mounted by the admin API at ``/ui``.

Pages and static files are the package's own (``static/``; the front-end
libraries are vendored under ``static/vendor/``, see ``VENDOR.json``): nothing
is fetched from elsewhere at run time. The pages read and control the pipes
through the admin API itself (``/pipes``, ``/systems``, ``/rates``...); the
routes here only log in and out, serve files, and answer the composer
(``/ui/api/...``, see ``pipes.console.composer``).

Who may call what is decided by ``pipes.admin_guard`` before any handler
here runs: without the token (as a bearer header or the session cookie set by
``/ui/login``) ``/ui`` answers with the login page and every other path but
the static files with 401; every POST must be JSON, so a form another site
posts is refused. Every response carries a Content-Security-Policy that lets
the pages load scripts from this server only, and forbids framing them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from pipes.admin_guard import SESSION_COOKIE, AdminGuard, session_value
from pipes.clock import iso_utc
from pipes.console import composer
from pipes.console.forms import form_fields
from pipes.console.settings import ConsoleSettings
from pipes.console.written import read_written
from pipes.daemon import Daemon
from pipes.models import NAME_PATTERN
from pipes.registry import Registry
from pipes.templates import reserved_variables

__all__ = ["STATIC", "console_app"]

STATIC = Path(__file__).parent / "static"

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    "": "text/plain; charset=utf-8",
}
_IMPORT_MAP = re.compile(rb'<script type="importmap">(.*?)</script>', re.S)


@dataclass
class _Console:
    daemon: Daemon
    guard: AdminGuard
    settings: ConsoleSettings
    registry: Registry = field(default_factory=Registry)
    _files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ files

    def file(self, relative: str) -> tuple[bytes, str] | None:
        """A static file's bytes and ETag (read once), or None when there is no such file."""
        cached = self._files.get(relative)
        if cached is not None:
            return cached
        root = STATIC.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        body = path.read_bytes()
        found = (body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        self._files[relative] = found
        return found

    def csp(self, page: bytes) -> str:
        """The page's Content-Security-Policy: scripts from here, plus the page's own import map."""
        hashes = " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
            for m in _IMPORT_MAP.finditer(page)
        )
        return (
            f"default-src 'self'; script-src 'self' {hashes}; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
        )

    # ------------------------------------------------------------------ pages

    async def page(self, request: web.Request) -> web.Response:
        if not request.path.endswith("/"):
            # Relative links (static/..., ../pipes) resolve from /ui/, also behind a proxy's prefix.
            return web.Response(status=302, headers={"Location": "ui/"})
        name = "index.html" if self.guard.authenticated(request) else "login.html"
        found = self.file(name)
        assert found is not None, f"{name} is missing from the package"
        body, _ = found
        response = web.Response(body=body, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = self.csp(body)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        found = self.file(relative)
        if found is None:
            raise web.HTTPNotFound()
        body, etag = found
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        suffix = Path(relative).suffix
        kind = _TYPES.get(suffix) or mimetypes.guess_type(relative)[0] or "application/octet-stream"
        return web.Response(body=body, headers={**headers, "Content-Type": kind})

    # ------------------------------------------------------------------ session

    async def login(self, request: web.Request) -> web.Response:
        token = self.guard.token
        if not token:
            return _json({"token_required": False})
        given = await _body(request)
        if not isinstance(given.get("token"), str) or not _same(given["token"], token):
            return _json({"error": "wrong token"}, 401)
        response = _json({"token_required": True})
        response.set_cookie(
            SESSION_COOKIE,
            session_value(token),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.settings.secure_cookie,
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = _json({"logged_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ composer helpers

    async def settings_view(self, request: web.Request) -> web.Response:
        config_dir = self.settings.config_dir
        return _json(
            {
                "ui_write": self.settings.write and config_dir is not None,
                "config_dir": str(config_dir) if config_dir is not None else None,
                "token_required": bool(self.guard.token),
            }
        )

    async def connectors(self, request: web.Request) -> web.Response:
        rows: list[dict[str, Any]] = []
        for row in self.registry.listing():
            if row.connector is None:
                rows.append({"name": row.name, "error": row.error, "roles": [], "forms": {}})
                continue
            forms: dict[str, list[dict[str, Any]]] = {}
            for role in row.connector.roles:
                cls = getattr(row.connector, role)
                forms[role] = form_fields(cls.options_model)
            rows.append(
                {
                    "name": row.name,
                    "description": row.connector.description,
                    "roles": row.connector.roles,
                    "forms": forms,
                }
            )
        return _json({"connectors": rows})

    async def try_filter(self, request: web.Request) -> web.Response:
        given = await _body(request)
        return _json(composer.try_filter(given.get("filter"), given.get("event")))

    async def render(self, request: web.Request) -> web.Response:
        given = await _body(request)
        given_names = given.get("names")
        names: dict[str, Any] = given_names if isinstance(given_names, dict) else {}
        variables: dict[str, Any] = dict(
            reserved_variables(
                str(names.get("pipe") or "pipe"),
                str(names.get("source") or "source"),
                str(names.get("target") or "target"),
                None,
            )
        )
        variables["aws.pipes.event.ingestion-time"] = iso_utc(time.time())
        return _json(composer.render_transform(given.get("transform"), given.get("event"), variables))

    def _plan(self, given: dict[str, Any]) -> tuple[Path | None, str | None]:
        """Which file the YAML would be saved to, or why it cannot be; None for a new pipe without a folder."""
        edit = given.get("edit")
        if isinstance(edit, str) and edit:
            handle = self.daemon.pipes.get(edit)
            if handle is None:
                return None, f"no pipe named {edit!r} (it was removed?)"
            return Path(handle.definition.file), None
        if self.settings.config_dir is None:
            return None, None
        name = _first_name(given.get("yaml"))
        if not name:
            return None, None
        return self.settings.config_dir / f"{name}.yaml", None

    def _check(self, given: dict[str, Any]) -> tuple[composer.Checked, Path | None, str | None]:
        text = given.get("yaml")
        if not isinstance(text, str):
            raise web.HTTPBadRequest(
                text=orjson.dumps({"error": "send the YAML as text in 'yaml'"}).decode(),
                content_type="application/json",
            )
        path, refusal = self._plan(given)
        shown = str(path) if path is not None else "<new pipe>.yaml"
        pipe_dir = path.parent.resolve() if path is not None else self.settings.config_dir
        taken = {name: h.definition.file for name, h in self.daemon.pipes.items()}
        checked = composer.check_text(text, shown, registry=self.registry, pipe_dir=pipe_dir, taken=taken)
        if path is not None and not given.get("edit") and path.exists() and checked.ok:
            message = f"{path} exists already; choose another name"
            checked.problems.append(composer.Problem(1, 1, "name", message, f"{path}:1:1: name: {message}"))
        return checked, path, refusal

    async def validate(self, request: web.Request) -> web.Response:
        given = await _body(request)
        # In a thread: checking imports what the YAML names, and the pipes share this event loop.
        checked, path, refusal = await asyncio.to_thread(self._check, given)
        body = checked.as_dict()
        body["file"] = str(path) if path is not None else None
        if refusal:
            body["refusal"] = refusal
        return _json(body)

    async def save(self, request: web.Request) -> web.Response:
        if not (self.settings.write and self.settings.config_dir is not None):
            return _json(
                {
                    "error": "this daemon was started without --ui-write: the console writes no file "
                    "(download the YAML and put it among the daemon's pipe files)"
                },
                403,
            )
        if self.daemon.stopping:
            return _json({"error": "the daemon is shutting down"}, 409)
        given = await _body(request)
        checked, path, refusal = await asyncio.to_thread(self._check, given)
        if refusal:
            return _json({"error": refusal}, 409)
        if path is not None and given.get("edit"):
            count = await asyncio.to_thread(_pipes_in, path)
            if count > 1:
                message = (
                    f"{path} holds {count} pipes; the composer saves files of one pipe (edit it by hand)"
                )
                return _json({"error": message}, 409)
        if not checked.ok:
            body = checked.as_dict()
            body["error"] = f"{len(checked.problems)} error(s); first: {checked.problems[0].text}"
            return _json(body, 422)
        if path is None:
            return _json({"error": "the YAML names no pipe"}, 409)
        await asyncio.to_thread(composer.write_atomically, path, given["yaml"])
        report = await self.daemon.reload()
        body = {
            "file": str(path),
            "pipes": [d.name for d in checked.definitions],
            "reload": {
                "added": report.added,
                "removed": report.removed,
                "restarted": report.restarted,
                "errors": report.errors,
            },
        }
        return _json(body)


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _first_name(text: Any) -> str | None:
    """The first pipe's name in YAML text (to name its file), when it is a valid name."""
    if not isinstance(text, str):
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if isinstance(value, dict) and isinstance(value.get("pipes"), list) and value["pipes"]:
        value = value["pipes"][0]
    name = value.get("name") if isinstance(value, dict) else None
    return name if isinstance(name, str) and re.match(NAME_PATTERN, name) else None


def _pipes_in(path: Path) -> int:
    try:
        return len(read_written(path.read_text(encoding="utf-8")).pipes)
    except Exception:
        return 0


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        value = orjson.loads(await request.read() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": f"the body is not JSON: {exc}"}).decode(),
            content_type="application/json",
        ) from None
    if not isinstance(value, dict):
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": "the body must be a JSON object"}).decode(),
            content_type="application/json",
        )
    return value


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def console_app(daemon: Daemon, guard: AdminGuard, settings: ConsoleSettings) -> web.Application:
    """The console's routes, to mount at ``/ui`` under the admin API's guard."""
    console = _Console(daemon, guard, settings)
    app = web.Application(middlewares=[_headers])
    app.router.add_get("", console.page)
    app.router.add_get("/", console.page)
    app.router.add_post("/login", console.login)
    app.router.add_post("/logout", console.logout)
    app.router.add_get("/static/{path:.+}", console.static)
    app.router.add_get("/api/settings", console.settings_view)
    app.router.add_get("/api/connectors", console.connectors)
    app.router.add_post("/api/filter", console.try_filter)
    app.router.add_post("/api/transform", console.render)
    app.router.add_post("/api/validate", console.validate)
    app.router.add_post("/api/save", console.save)
    return app
