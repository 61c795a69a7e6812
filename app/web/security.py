"""Transport hygiene: security headers on pages, Secure session cookies, running behind a proxy.

Pages (every text/html response: the study page, message pages, the replay viewer) carry a
Content-Security-Policy the study page works under, and may not be framed by other sites.
What the policy allows, and why:

- scripts from this server only (no inline script, no eval), plus WebAssembly compilation
  ('wasm-unsafe-eval') for Pyodide; the worker is a module script from this server;
- connections to this server: fetches, the Socket.IO WebSocket and the match channel (ws:/wss: on
  this host), and the match channels of live relay processes on other origins (app/relay);
- a Pyodide index on another origin (`--pyodide-url`, e.g. a CDN) in script-src and connect-src;
- the researcher's scene HTML may show images and media from https: sites and use style
  attributes, so img-src/media-src allow https: and style-src allows inline styles.
"""
from __future__ import annotations

from typing import Callable, Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

PROXY_FIX_ENV = "COPLAY_PROXY_FIX"


def pyodide_origin(pyodide_url: str) -> str | None:
    """The origin of a Pyodide index URL on another server (None for a path on this one)."""
    parts = urlsplit(pyodide_url)
    if not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else parts.netloc


def content_security_policy(host: str, pyodide_url: str, channels: Iterable[str] = ()) -> str:
    """The pages' policy for a page served as `host` (e.g. "study.example.org"), Pyodide from `pyodide_url`;
    `channels`: other origins of match channels (relay processes, app/relay)."""
    extra = pyodide_origin(pyodide_url)
    origins = f" {extra}" if extra else ""
    relays = "".join(f" {origin}" for origin in channels)
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'wasm-unsafe-eval'{origins}",
        "worker-src 'self' blob:",
        f"connect-src 'self' ws://{host} wss://{host}{origins}{relays}",
        "img-src 'self' data: blob: https:",
        "media-src 'self' https:",
        "style-src 'self' 'unsafe-inline'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def install(app: Flask, pyodide_url: str, behind_proxy: bool,
            channel_origins: Callable[[], Iterable[str]] = tuple) -> None:
    """Add the headers to `app`'s responses; behind a proxy, honour X-Forwarded-For/-Proto/-Host (one proxy)
    and mark the session cookie Secure. Call after Flask-SocketIO wrapped `app.wsgi_app`, so socket
    connections see the forwarded addresses too."""
    if behind_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    app.config["SESSION_COOKIE_SECURE"] = behind_proxy
    app.session_interface = _SessionInterface()

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if response.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy",
                               content_security_policy(request.host, pyodide_url, channel_origins()))
            headers.setdefault("X-Frame-Options", "DENY")
        return response


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie also Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure
