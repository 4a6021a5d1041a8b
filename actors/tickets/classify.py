"""Classify a new request: its category (for skills) and priority, from what the customer wrote."""

from __future__ import annotations

import re

CATEGORIES: dict[str, tuple[str, ...]] = {
    "dns": ("dns", "nameserver", "name server", "mx record", "cname", "a record", "zone", "txt"),
    "email": ("email", "e-mail", "mailbox", "webmail", "imap", "smtp", "pop3", "spam", "bounce",
              "inbox", "outlook", "roundcube"),
    "web": ("website", "web site", "site is down", "500", "502", "503", "vhost", "wordpress",
            "php", ".htaccess", "nginx", "apache"),
    "database": ("database", "mysql", "mariadb", "postgres", "sql", "phpmyadmin"),
    "ftp": ("ftp", "sftp", "upload"),
    "tls": ("ssl", "tls", "certificate", "https", "let's encrypt"),
    "billing": ("invoice", "billing", "payment", "refund", "charge", "credit card"),
}  # fmt: skip

URGENT = ("down", "outage", "not working", "hacked", "compromised", "urgent", "emergency")
HIGH = ("error", "cannot", "can't", "unable", "broken", "fails", "failed")


def _words(text: str) -> str:
    return " " + re.sub(r"\s+", " ", text.lower()) + " "


def classify(subject: str, body: str) -> tuple[str, str]:
    """(category, priority) for a request; 'general' and 'normal' when nothing stands out."""
    text = _words(subject + " " + body)
    best, hits = "general", 0
    for category, keywords in CATEGORIES.items():
        n = sum(1 for k in keywords if k in text)
        if n > hits:
            best, hits = category, n
    if any(k in text for k in URGENT):
        priority = "urgent" if best != "billing" else "high"
    elif any(k in text for k in HIGH):
        priority = "high"
    else:
        priority = "normal"
    return best, priority
