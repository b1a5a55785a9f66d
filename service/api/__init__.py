"""The HTTP API: the FastAPI app, its routes, and the helpers only it uses (child processes for drawing and
predicting, uploads, comparisons, request metrics). It reads and changes jobs only through the core (`service`)."""
