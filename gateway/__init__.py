"""The only door: FastAPI app (REST, pages, SSE), SMTP intake, the `sitedesk` command line."""
