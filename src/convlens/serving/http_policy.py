"""What the server promises every client at the HTTP level, shared by the app (convlens.serving.app) and the
protocols uvicorn runs it with (convlens.serving.http_protocol): the headers on every answer, the page's
Content-Security-Policy, and how large a request's head may be and how long its head and body may take to arrive.
Standard library only: the protocols import it without the app's dependencies.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

BODY_TIMEOUT_ENV = "CONVLENS_BODY_TIMEOUT_S"  # set by `convlens serve --body-timeout`
BODY_TIMEOUT_S = 30.0
# The request line and headers together. httptools (what `convlens serve` runs) has no limit of its own: a 200 MB
# header was read whole, and 50 MB of short ones cost 700 MB of memory. Generous for browsers, whose cookies for
# 127.0.0.1 are shared by every local port; h11 gets the same limit in place of its 16 KiB.
MAX_HEAD_BYTES = 64 * 1024

# On every answer: a browser must not read a JSON error that echoes a client's text (a content type, an Accept
# header) as anything but JSON. Encoded once: uvicorn takes them as they are.
NOSNIFF = (b"x-content-type-options", b"nosniff")
COMMON_HEADERS = (NOSNIFF,)


def configured_body_timeout_s() -> float:
    """Seconds a request's head, then its body, may take to arrive (`convlens serve --body-timeout`)."""
    return float(os.environ.get(BODY_TIMEOUT_ENV) or BODY_TIMEOUT_S)


def _sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def page_headers(html: str) -> dict[str, str]:
    """The page's own headers: a Content-Security-Policy allowing exactly what it uses (its one inline script and
    one inline style block, by hash; data: images, which its examples and icon are; fetch to its own origin) and
    nothing else, and no framing (clickjacking: X-Frame-Options for browsers that predate frame-ancestors) or
    Referer (the page links nowhere; nothing about it should leave)."""
    sources = {}
    for tag in ("script", "style"):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        if len(blocks) != 1 or re.search(rf"<{tag}\b[^>]", html):  # hashed as written: one plain block each
            raise ValueError(f"page.html must hold exactly one plain <{tag}> block (its CSP hash is computed)")
        sources[tag] = _sha256_source(blocks[0])
    policy = ("default-src 'none'", f"script-src {sources['script']}", f"style-src {sources['style']}",
              "img-src data:", "connect-src 'self'", "base-uri 'none'", "form-action 'none'",
              "frame-ancestors 'none'")
    return {"Content-Security-Policy": "; ".join(policy), "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
