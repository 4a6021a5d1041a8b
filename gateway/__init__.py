"""The only door: the FastAPI app (REST, pages, SSE), the `sitedesk` command line, the Python API
for batch jobs. It reads through read models (store/read/) and writes by calling actors."""
