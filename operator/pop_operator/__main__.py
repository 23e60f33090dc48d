"""``python -m pop_operator``: run the edge-pop operator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from pop_operator.settings import OperatorSettings

DESCRIPTION = """\
Run the edge-pop operator: reconcile EdgePop resources (edgepop.io/v1alpha1) into a
StatefulSet, Services and a PodDisruptionBudget per region, report status, and publish
sync messages on Redis. Credentials come from $KUBECONFIG or the in-cluster
ServiceAccount. Every option can also be set as EDGEPOP_OPERATOR_<NAME> in the
environment (e.g. EDGEPOP_OPERATOR_NAMESPACE).
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pop_operator", description=DESCRIPTION)
    parser.add_argument("--namespace", help="serve EdgePops of this namespace only")
    parser.add_argument("--http-port", type=int, help="port of /healthz and /metrics (8080)")
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        help="run the handlers at once (only safe with a single replica)",
    )
    parser.add_argument("--lease-namespace", help="namespace of the leader Lease")
    parser.add_argument("--lag-check-seconds", type=float, help="period of the lag timer (30)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides: dict[str, object] = {}
    if args.namespace:
        overrides["namespace"] = args.namespace
    if args.http_port is not None:
        overrides["http_port"] = args.http_port
    if args.no_leader_election:
        overrides["leader_election"] = False
    if args.lease_namespace:
        overrides["pod_namespace"] = args.lease_namespace
    if args.lag_check_seconds is not None:
        # The timer interval is read when the handlers are imported: pass it on by env.
        os.environ["EDGEPOP_OPERATOR_LAG_CHECK_SECONDS"] = str(args.lag_check_seconds)
    settings = OperatorSettings(**overrides)  # type: ignore[arg-type]
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from pop_operator.app import run  # imports kopf and registers the handlers

    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
