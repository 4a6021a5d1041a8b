"""The web server as a browser sees it: what a site answers over HTTP (``httpx``)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from automation.clients import TIMEOUT, Endpoint


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str


def get(at: Endpoint, domain: str, path: str = "/") -> Answer:
    """GET ``path`` of the site ``domain`` (the Host header) at the host's HTTP port;
    httpx.HTTPError when it does not answer."""
    url = f"http://{at.address}:{at.layout.http_port}{path}"
    r = httpx.get(url, headers={"Host": domain}, timeout=TIMEOUT, follow_redirects=False)
    return Answer(r.status_code, r.text, r.headers.get("content-type", ""))
