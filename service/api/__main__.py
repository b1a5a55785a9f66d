"""`python -m service.api`: serve the API on $HOST:$PORT (the workers run apart: `python -m worker`, or both at once
with `python -m service.supervise`)."""

import argparse

import uvicorn

from service.config import describe_environment, get_settings

GRACEFUL_SHUTDOWN_SECONDS = 3

ENVIRONMENT = {
    "database_url": "the job database, an SQLAlchemy URL (SQLite or postgresql+psycopg://…)",
    "artifact_url": "where the jobs' files are kept: a folder, or s3://bucket/prefix (empty: $ARTIFACT_DIR)",
    "host": "the address to listen on",
    "port": "the port to listen on",
    "api_token": "a bearer token every request but /health must carry",
    "access_log": "one log line per request",
    "db_timeout_seconds": "answer 503 when the database takes longer than this",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service.api",
        description=__doc__,
        epilog=describe_environment(ENVIRONMENT),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="the address to listen on (default: $HOST)")
    parser.add_argument("--port", type=int, help="the port to listen on (default: $PORT)")
    args = parser.parse_args()
    settings = get_settings()
    uvicorn.run(
        "service.api.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        access_log=settings.access_log,
        # Open responses (downloads, and later event streams) get this long after Ctrl-C before they are cut.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


if __name__ == "__main__":
    main()
