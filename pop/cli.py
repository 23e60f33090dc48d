"""The ``edge-pop`` command."""

from __future__ import annotations

import argparse
import sys

from pop import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge-pop",
        description=(
            "A POP serving a Turso/libSQL database from a local replica: reads answered "
            "locally, writes forwarded to the origin. Configured by environment variables "
            "(TURSO_DATABASE_URL, TURSO_AUTH_TOKEN, PROXY_AUTH_TOKEN, AUTH_JWT_KEY_FILE, "
            "TURSO_SYNC_INTERVAL, "
            "DB_FILEPATH, REPLICA_ENGINE, REDIS_CONNECTION_STRING, REDIS_SYNC_CHANNEL, PORT, "
            "REGION, LOG_LEVEL) or a .env file."
        ),
    )
    parser.add_argument("--version", action="version", version=f"edge-pop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run a POP (configured from the environment)")
    serve.add_argument(
        "--env-file",
        default=".env",
        help="optional .env file; '' to read the environment only (default: .env)",
    )
    demo = commands.add_parser(
        "demo", help="start a local origin and two POPs, write in one region, read in the other"
    )
    demo.add_argument("--tursodb", required=True, help="path to the tursodb binary")
    demo.add_argument(
        "--workdir", default=None, help="folder for the demo's files (default: temporary)"
    )
    demo.add_argument("--keep-running", action="store_true", help="keep serving until Ctrl-C")
    gateway = commands.add_parser(
        "gateway",
        help="serve Hrana with real streams in front of a tursodb origin (which has none)",
    )
    gateway.add_argument("--origin", required=True, help="tursodb --sync-server URL")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)

    if args.command == "serve":
        from pop.server import serve as run_server

        return run_server(args.env_file)
    if args.command == "demo":
        from pop.devtools.demo import run_demo

        return run_demo(args.tursodb, args.workdir, keep_running=args.keep_running)
    if args.command == "gateway":
        from pop.http.gateway import run_gateway

        return run_gateway(args.origin, args.host, args.port)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
