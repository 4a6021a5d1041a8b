"""E-mail understood: what a received mail says, and what the desk must make of it.

- ``message``  the typed result: `ParsedMail`, its addresses, attachments and defect names.
- ``parse``    raw bytes into a `ParsedMail` (headers, MIME, charsets), bounded, never raising.
- ``headers``  header fields decoded safely (encoded words, addresses, message ids, dates).
- ``htmltext`` HTML bodies sanitised (nh3) and rendered as plain text.
- ``reply``    the new text of a reply, without quoted history and signature.
- ``bounces``  delivery reports (RFC 3464/6522 and common non-standard ones) and feedback
  reports: for which recipients, permanent or transient, and the original Message-ID.
- ``loops``    whether a mail must never get an automatic answer, and why (RFC 3834 and more).
- ``message_id`` the desk's own Message-IDs: signed (HMAC), naming ticket and outbox row.
- ``threading`` which ticket a received mail belongs to (our id, subject number), and why.

Pure functions over bytes and pydantic models: no actor, no database, no network. The intake
(SMTP door, threading, storage) builds on them.
"""
