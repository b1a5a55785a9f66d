"""What other web pages cannot make a browser do to the service.

A browser sends any page's form posts, and its `fetch` posts of the "simple" kinds, to any address, this service's
included, with the service's cookies when the page is on the same site (SameSite cookies do not tell ports apart);
and a DNS-rebinding page (a name of the attacker's that resolves to this machine) may even read the answers. So:

- only the host names the service is meant to have are served (ALLOWED_HOSTS, loopback's and HOST): a rebinding
  page's requests carry its own name in `Host` and are refused with 400;
- a request that can change something (any method but GET, HEAD and OPTIONS) from a page of another origin is
  refused with 403: `Sec-Fetch-Site`, which every current browser sends and no page can set, must say
  `same-origin` (or `none`: the user's own doing); from a browser too old to send it, `Origin`, when present, must
  be this service's. A request with neither (curl, scripts, other programs) is no page's doing and passes. This is
  the rule of Go's `http.CrossOriginProtection`;
- redirects name no host, so a `Host` header is never echoed into a `Location`.

Refusals come in the one error shape, before the body is read.
"""

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings
from service.errors import error_body

LOOPBACK = ("localhost", "127.0.0.1", "::1")
# HOST values that mean "every address" rather than a name anyone could reach the service by.
ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104 - compared with, never bound to
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# `Sec-Fetch-Site` values of requests made by this service's own pages, or by the user (typed, bookmarked).
OWN_SITES = frozenset({"same-origin", "none"})


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """The host names served: loopback's, HOST's (unless it is every address) and ALLOWED_HOSTS', lower-cased."""
    own = () if settings.host in ANY_ADDRESS else (settings.host,)
    extra = tuple(name.strip() for name in settings.allowed_hosts.split(",") if name.strip())
    return tuple(name.lower().strip("[]") for name in (*LOOPBACK, *own, *extra))


def host_allowed(authority: str, allowed: Sequence[str]) -> bool:
    """Whether a `Host` header (`name[:port]`, an IPv6 address in brackets) names one of `allowed`: a name, `*`
    for any, or `*.example.com` for the names under example.com."""
    try:
        name = urlsplit(f"//{authority}").hostname
    except ValueError:  # "[" without "]", and the like
        return False
    if not name:
        return False
    return any(
        pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:]))
        for pattern in allowed
    )


def from_another_origin(headers: Headers) -> bool:
    """Whether a browser sent this request for a page of another origin than the service's (see the module)."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site not in OWN_SITES
    origin = headers.get("origin")
    if origin is None:
        return False
    # "null" (a sandboxed frame, a file) has no host; otherwise the page's host and port are the ones requested.
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


def without_host(location: str, host: str) -> str:
    """`location` as a path, when it names `host` (what Starlette's trailing-slash redirects copy from `Host`)."""
    parts = urlsplit(location)
    if not parts.netloc or parts.netloc.lower() != host.lower():
        return location
    # One leading slash only: `//name/…` would be read as another host.
    return urlunsplit(("", "", "/" + parts.path.lstrip("/"), parts.query, parts.fragment))


class Guard:
    """ASGI middleware: refuse unknown hosts (400) and other origins' state-changing requests (403); keep
    redirects host-free."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed = allowed_hosts(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan; the service has no websockets
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not host_allowed(host, self.allowed):
            message = "the Host header names no host this service answers to; ALLOWED_HOSTS lists more"
            await JSONResponse(error_body("unknown_host", message), status_code=400)(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and from_another_origin(headers):
            message = (
                "a page of another origin may not change anything here: use this service's own pages, or a client "
                "that is not a browser"
            )
            await JSONResponse(error_body("cross_origin", message), status_code=403)(scope, receive, send)
            return

        async def send_host_free(message: Message) -> None:
            if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
                message = {
                    **message,
                    "headers": [
                        (k, without_host(v.decode("latin-1"), host).encode("latin-1") if k == b"location" else v)
                        for k, v in message.get("headers", [])
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_host_free)
