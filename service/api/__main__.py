"""`python -m service.api`: serve the API on $HOST:$PORT (the workers run apart: `python -m worker`, or both at once
with `python -m service.supervise`)."""

import argparse

import uvicorn

from service.config import describe_environment, get_settings

GRACEFUL_SHUTDOWN_SECONDS = 3

# The settings this program reads, for --help (their meanings and defaults are the fields' own).
READS = (
    "database_url",
    "artifact_url",
    "artifact_dir",
    "aws_endpoint_url",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_default_region",
    "data_dir",
    "cache_dir",
    "host",
    "port",
    "allowed_hosts",
    "access_log",
    "api_token",
    "max_active_jobs",
    "max_sweep_jobs",
    "session_hours",
    "max_body_bytes",
    "worker_alive_seconds",
    "db_timeout_seconds",
)


def main() -> None:
    """Parse the options and serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m service.api",
        description=__doc__,
        epilog=describe_environment(READS),
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
