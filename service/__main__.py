"""`python -m service`: serve the API on $HOST:$PORT."""

import uvicorn

from service.config import get_settings

GRACEFUL_SHUTDOWN_SECONDS = 3


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        access_log=settings.access_log,
        # Open responses (downloads, and later event streams) get this long after Ctrl-C before they are cut.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()
