"""web_fetch and web_search: research for the planner, off unless configured.

Fetched pages are cached under ``.opencode/docs/`` (keyed by the URL's sha256), so a mission
fetches a page once however many sessions ask.  HTML is reduced to readable text; the body is
read only up to ``max_bytes`` (an endless response cannot fill memory) and binary bodies are
refused.  Search asks a SearXNG-compatible JSON endpoint.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from pathlib import Path

import httpx
import msgspec

from ocactors.tools.errors import ToolError
from ocactors.tools.shell import cap_output
from ocactors.tools.spec import ToolContext, ToolSpec

TEXT_LIMIT = 20_000
FETCH_TIMEOUT_S = 30.0
RESULTS = 8
_DROP = re.compile(r"(?is)<(script|style|noscript|svg)[^>]*>.*?</\1>")
_BREAK = re.compile(r"(?i)<(br|/p|/div|/h[1-6]|/li|/tr|/pre)[^>]*>")
_TAG = re.compile(r"<[^>]+>")


class WebFetch(msgspec.Struct, kw_only=True):
    """web_fetch arguments."""

    url: str


class WebSearch(msgspec.Struct, kw_only=True):
    """web_search arguments."""

    query: str


def html_to_text(page: str) -> str:
    """Readable text from HTML: scripts and styles gone, tags stripped, blank runs folded."""
    text = _TAG.sub("", _BREAK.sub("\n", _DROP.sub("", page)))
    lines = [" ".join(line.split()) for line in html.unescape(text).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _client(ctx: ToolContext) -> httpx.Client:
    if ctx.http is None:
        raise ToolError("the web tools are not available in this mission")
    return ctx.http


def web_fetch(ctx: ToolContext, args: WebFetch) -> str:
    """The page as text, from the mission's cache when it was fetched before."""
    if not args.url.startswith(("http://", "https://")):
        raise ToolError("url must start with http:// or https://")
    cached = _cache_file(ctx, args.url)
    if cached is not None and cached.exists():
        return cached.read_text("utf-8")
    text = page_text(*download(_client(ctx), args.url, ctx.web.max_bytes), args.url)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(text, "utf-8")
    return text


def _cache_file(ctx: ToolContext, url: str) -> Path | None:
    if ctx.web.cache_dir is None:
        return None
    return ctx.web.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()}.txt"


def download(http: httpx.Client, url: str, limit: int) -> tuple[bytes, str, str]:
    """(first ``limit`` bytes of the body, content type, encoding); the rest is never read."""
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    body = bytearray()
    try:
        with http.stream("GET", url, follow_redirects=True, timeout=FETCH_TIMEOUT_S) as response:
            if response.status_code >= 400:
                raise ToolError(f"{url} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= limit or time.monotonic() > deadline:
                    break
            kind = response.headers.get("content-type", "")
            return bytes(body[:limit]), kind, response.charset_encoding or "utf-8"
    except httpx.HTTPError as error:
        raise ToolError(f"could not fetch {url}: {type(error).__name__}") from None


def page_text(body: bytes, kind: str, encoding: str, url: str) -> str:
    """Readable, capped text of a page; a binary body (a PDF, an image) is refused."""
    if b"\0" in body[:8192]:
        raise ToolError(f"{url} is binary ({kind or 'no content type'}); not shown")
    try:
        page = body.decode(encoding, "replace")
    except LookupError:
        page = body.decode("utf-8", "replace")
    return cap_output(html_to_text(page) if "html" in kind else page, TEXT_LIMIT)


def web_search(ctx: ToolContext, args: WebSearch) -> str:
    """Top results (title, url, snippet) from the configured search endpoint."""
    if not ctx.web.search_url:
        raise ToolError("web_search is not configured")
    try:
        response = _client(ctx).get(
            ctx.web.search_url, params={"q": args.query, "format": "json"}, timeout=30.0
        )
        if response.status_code >= 400:
            raise ToolError(f"search answered HTTP {response.status_code}")
        data = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise ToolError(f"search failed: {type(error).__name__}") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        results = []
    lines = [_result(r) for r in results[:RESULTS] if isinstance(r, dict)]
    return "\n".join(lines) or f"no results for {args.query!r}"


def _result(result: dict[str, object]) -> str:
    snippet = " ".join(str(result.get("content", "")).split())[:300]
    return f"- {result.get('title', '')}\n  {result.get('url', '')}\n  {snippet}"


WEB_FETCH = ToolSpec(
    "web_fetch", "Fetch a web page as text (cached per mission).", WebFetch, web_fetch
)
WEB_SEARCH = ToolSpec(
    "web_search", "Search the web; returns titles, URLs, snippets.", WebSearch, web_search
)
