"""The POP's HTTP face: the Starlette app (``app``), the data endpoints as bare ASGI apps
(``endpoint``), the wire formats that only re-encode a session's answers (``cursor``,
``legacy``), and the request-head guard for uvicorn (``guard``)."""
