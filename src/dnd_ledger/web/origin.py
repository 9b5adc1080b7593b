"""Cross-site request checks for the forms a browser posts with a cookie.

Browsers send ``Origin`` on every cross-origin ``POST`` (and ``Referer`` as a
fallback). A sign-in or sign-out form posted from another site (login CSRF,
forced sign-out) names that site there, and is refused (403). A request with
neither header does not come from a browser form and cannot ride on a
victim's cookie, so it is let through.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

CROSS_SITE = "this form must be posted from the ledger's own pages (Origin check)"


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased; None when it has none."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, public_url: str) -> bool:
    """True unless the request says it comes from another origin than ``public_url``."""
    claimed = request.headers.get("origin")
    if claimed is None:
        referer = request.headers.get("referer")
        if referer is None:
            return True
        claimed = referer
    found = origin_of(claimed)
    return found is not None and found == origin_of(public_url)
