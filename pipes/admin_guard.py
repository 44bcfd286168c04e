"""Who may talk to the admin API: the checks made before any handler runs.

The API can stop pipes and reload files, and it listens on localhost, where
every web page the operator opens can send it requests. A browser sends those
cross-site requests with the operator's network position, so the API refuses
what only a browser would send:

- **Host.** The ``Host`` header must name this server: a loopback name or
  address, the address it is bound to, a name given with
  ``--admin-allow-host``, or (bound to every interface) any IP address. A page
  that rebinds its own DNS name to 127.0.0.1 ("DNS rebinding") still sends its
  own name, and is refused, so it cannot read ``/pipes``.
- **Origin.** A request carrying an ``Origin`` header from another origin than
  this server's is refused.
- **State-changing requests** (POST) need ``Content-Type: application/json`` or
  an ``X-Pipes-Request`` header. A browser cannot send either cross-site
  without asking first (a CORS preflight, which this API never grants).
- **Token.** With ``PIPES_ADMIN_TOKEN`` set, every endpoint but ``/healthz``
  (and the console's login page and static files) needs ``Authorization:
  Bearer <token>``, or the console's session cookie: ``pipes_session``, set by
  the console's login (``pipes.console.routes``) to a value derived from the
  token, HttpOnly and SameSite=Strict, so that a page of another site can
  neither read it nor have the browser send it.

Serving on an address other than loopback without a token is refused at start
unless asked for explicitly (``--admin-insecure``); ``--admin-tls-cert`` and
``--admin-tls-key`` serve HTTPS.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import orjson
from aiohttp import web

__all__ = [
    "AUTHORIZED",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "AdminGuard",
    "exposure_problem",
    "is_loopback",
    "session_value",
    "tls_context",
]

#: A header a browser cannot add to a cross-site request without a CORS preflight.
CSRF_HEADER = "X-Pipes-Request"
#: The console's session cookie (see ``session_value``).
SESSION_COOKIE = "pipes_session"

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, token: str | None, insecure: bool) -> str | None:
    """Why serving the API on ``host`` must not start, or None when it may."""
    if token or insecure or is_loopback(host):
        return None
    return (
        f"the admin API on {host} would be open to the network without a token: set "
        "PIPES_ADMIN_TOKEN (clients send it as a bearer token), or give --admin-insecure "
        "to serve it without one"
    )


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server TLS context from PEM files; ``ValueError`` with one line when they do not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise ValueError(f"cannot load {cert_file} with {key_file}: {reason}") from None
    return context


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: derived from it, so the cookie jar never holds the token."""
    return hmac.new(token.encode(), b"pipes console session", hashlib.sha256).hexdigest()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _host_name(header: str) -> str:
    """The name in a ``Host`` header, without port and brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, sep, port = header.rpartition(":")
    if sep and port.isdigit():
        header = name
    return header.rstrip(".")


def _refuse(message: str, status: int) -> web.Response:
    return web.Response(body=orjson.dumps({"error": message}), status=status, content_type="application/json")


#: Set on every request the guard let through: whether it carried the token.
AUTHORIZED: web.RequestKey[bool] = web.RequestKey("pipes.authorized", bool)


@dataclass(frozen=True)
class AdminGuard:
    """The checks of this module for one server: the address it is bound to and the names it answers to."""

    bind_host: str = "127.0.0.1"
    token: str | None = None
    #: More names the Host header may give (``--admin-allow-host``), e.g. a DNS name of the host.
    allowed_hosts: Iterable[str] = field(default=())
    #: Paths that need no token: probes rarely carry secrets (``/readyz`` then names no pipe),
    #: and the console's login page must show without one (its handlers ask ``authenticated``).
    open_paths: frozenset[str] = frozenset({"/healthz", "/readyz", "/ui", "/ui/", "/ui/login", "/ui/logout"})
    #: Path prefixes that need no token: the console's static files (the same for everyone).
    open_prefixes: tuple[str, ...] = ("/ui/static/",)

    def host_allowed(self, header: str | None) -> bool:
        if header is None:
            return True  # not a browser: every browser sends Host
        name = _host_name(header)
        if is_loopback(name):
            return True
        bind = self.bind_host.strip("[]").lower()
        if name == bind or name in {h.strip("[]").rstrip(".").lower() for h in self.allowed_hosts}:
            return True
        return bind in _WILDCARDS and _is_ip(name)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not self.host_allowed(host):
            return _refuse(
                f"Host {host!r} is not an address of this admin API "
                "(add a name with --admin-allow-host NAME)",
                403,
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != f"{request.scheme}://{request.host}".lower():
            return _refuse(f"requests from another origin ({origin}) are refused", 403)
        if request.method not in _SAFE_METHODS and not (
            request.content_type == "application/json" or CSRF_HEADER in request.headers
        ):
            return _refuse(
                f"a {request.method} needs Content-Type: application/json or an {CSRF_HEADER} header",
                415,
            )
        request[AUTHORIZED] = authorized = self.authenticated(request)
        if not authorized and not self.is_open(request.path):
            response = _refuse("missing or wrong bearer token (see PIPES_ADMIN_TOKEN)", 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="pipes"'
            return response
        return await handler(request)

    def is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    def authenticated(self, request: web.Request) -> bool:
        """No token is set, or the request carries it as a bearer token or as the session cookie."""
        if not self.token:
            return True
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode()):
            return True
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), session_value(self.token).encode())
