"""Runs a LocalBackend in the foreground: ``python -m agentops.testing --port 8765``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from agentops.testing.backend import LocalBackend
from agentops.testing.server import is_loopback_host
from agentops.testing.tokens import DEFAULT_TOKEN_TTL


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m agentops.testing",
        description="Serve an AgentOps-compatible backend (token API and OTLP receiver) locally.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=DEFAULT_TOKEN_TTL,
        help="lifetime of issued tokens in seconds (default 30 days)",
    )
    parser.add_argument(
        "--api-key", default=None, help="UUID accepted as API key (default: a random one)"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding to a non-loopback address",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if not args.allow_remote and not is_loopback_host(args.host):
        print(
            f"Refusing to bind to non-loopback host {args.host!r}; pass --allow-remote to do so.",
            file=sys.stderr,
        )
        return 2
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(message)s")

    try:
        backend = LocalBackend(
            host=args.host, port=args.port, token_ttl=args.token_ttl, api_key=args.api_key
        )
        backend.start()
    except (ValueError, OSError) as err:
        print(f"Cannot start LocalBackend: {err}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def _request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)

    print(f"AgentOps LocalBackend listening on {backend.api_url}")
    print(f"  endpoint (AGENTOPS_API_ENDPOINT):               {backend.api_url}")
    print(f"  exporter_endpoint (AGENTOPS_EXPORTER_ENDPOINT): {backend.otlp_url}")
    print(f"  app_url (AGENTOPS_APP_URL):                     {backend.app_url}")
    print(f"  api key (AGENTOPS_API_KEY):                     {backend.api_key}")
    print("Press Ctrl+C to stop.", flush=True)

    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        backend.stop()
    print("LocalBackend stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
