"""The HTML of a mail made safe: sanitised HTML (nh3, the Ammonia sanitiser) and the plain text
rendered from it, with quoted blocks kept as ``>`` lines so that reply extraction sees them."""

from __future__ import annotations

from html.parser import HTMLParser

import nh3

MAX_HTML_CHARS = 1_000_000  # a larger HTML body is cut there (the parser flags the cut)
MAX_RENDERED_HTML_CHARS = 300_000  # of sanitised HTML rendered as text (a pure-Python walk)

# Tags whose content is dropped with them (nh3 strips the others' tags and keeps their text).
_DROPPED_WITH_CONTENT = {"script", "style", "title"}
_TAGS = nh3.ALLOWED_TAGS | {"font"}  # mail HTML is full of <font>; it keeps no attribute
_URL_SCHEMES = {"http", "https", "mailto", "cid"}  # cid: an inline image of the same mail

_BREAK_BEFORE_AND_AFTER = {
    "address", "article", "aside", "caption", "center", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "header", "hgroup", "nav", "section", "summary", "tr",
}  # fmt: skip
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "hr"}


def sanitize(html: str) -> str:
    """HTML safe to show in a page: no script, style, event handler or foreign URL scheme."""
    return nh3.clean(
        html[:MAX_HTML_CHARS],
        tags=_TAGS,
        clean_content_tags=_DROPPED_WITH_CONTENT,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def to_text(html: str) -> str:
    """Plain text of an HTML body: blocks on their own lines, list items with ``-``, each
    blockquote level as a ``> `` prefix, whitespace collapsed outside ``<pre>``."""
    renderer = _TextRenderer()
    renderer.feed(sanitize(html)[:MAX_RENDERED_HTML_CHARS])
    renderer.close()
    return renderer.text()


class _TextRenderer(HTMLParser):
    """Walks sanitised HTML (so only well-known tags remain) and writes lines of text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._line = ""
        self._line_quote = 0
        self._quote = 0
        self._pre = 0
        self._lists: list[list[int]] = []  # one entry per open list: [next number] or [] (ul)
        self._blank_wanted = False

    # -- structure ----------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._end_line(force=True)
        elif tag == "blockquote":
            self._paragraph()
            self._quote += 1
        elif tag in ("ul", "ol"):
            self._paragraph()
            self._lists.append([1] if tag == "ol" else [])
        elif tag == "li":
            self._end_line()
            marker = "- "
            if self._lists and self._lists[-1]:
                marker = f"{self._lists[-1][0]}. "
                self._lists[-1][0] += 1
            self._write("  " * max(len(self._lists) - 1, 0) + marker)
        elif tag in ("td", "th"):
            if self._line.strip():
                self._write("\t")
        elif tag == "pre":
            self._paragraph()
            self._pre += 1
        elif tag in _PARAGRAPH:
            self._paragraph()
        elif tag in _BREAK_BEFORE_AND_AFTER:
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self._paragraph()
            self._quote = max(self._quote - 1, 0)
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._paragraph()
        elif tag == "pre":
            self._pre = max(self._pre - 1, 0)
            self._paragraph()
        elif tag in _PARAGRAPH:
            self._paragraph()
        elif tag in _BREAK_BEFORE_AND_AFTER or tag == "li":
            self._end_line()

    def handle_data(self, data: str) -> None:
        if self._pre:
            parts = data.replace("\r\n", "\n").split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._end_line(force=True)
                self._write(part)
            return
        words = data.split()
        if not words:
            if data and self._line and not self._line.endswith((" ", "\t")):
                self._line += " "
            return
        lead = " " if data[0].isspace() and self._line and not self._line.endswith(" ") else ""
        tail = " " if data[-1].isspace() else ""
        self._write(lead + " ".join(words) + tail)

    # -- lines --------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        if not self._line:
            if self._blank_wanted and self._lines:
                self._lines.append(self._prefix(min(self._quote, self._line_quote)).rstrip())
            self._blank_wanted = False
            self._line_quote = self._quote
            if not self._pre:
                text = text.lstrip(" ")
            if not text:
                return
        self._line += text

    def _end_line(self, *, force: bool = False) -> None:
        if self._line.strip():
            self._lines.append(self._prefix(self._line_quote) + self._line.rstrip())
        elif force:
            if self._blank_wanted and self._lines:
                self._lines.append(self._prefix(self._quote).rstrip())
                self._blank_wanted = False
            self._lines.append(self._prefix(self._quote).rstrip())
        self._line = ""
        self._line_quote = self._quote

    def _paragraph(self) -> None:
        self._end_line()
        self._blank_wanted = True

    def _prefix(self, depth: int) -> str:
        return "> " * depth

    def text(self) -> str:
        self._end_line()
        out: list[str] = []
        for line in self._lines:
            if not line.strip("> ") and out and not out[-1].strip("> "):
                continue  # one blank line at most between paragraphs
            out.append(line)
        return "\n".join(out).strip("\n")
