"""`paramedic-operator`: runs the Kopf operator."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import kopf

from paramedic import netguard
from paramedic.settings import Settings, SettingsError

from . import preflight


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="paramedic-operator", description="Paramedic's Kubernetes operator.")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="watch this namespace (repeatable); default: PARAMEDIC_WATCH_NAMESPACES, else all")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument("--identity", default=None, metavar="NAME",
                   help="this replica's name in the shards' Leases and status.handledBy "
                        "(default: PARAMEDIC_IDENTITY, else $POD_NAME, else host:pid)")
    p.add_argument("--standalone", action="store_true",
                   help="no Leases: take every shard and coordinate with no other replica (run only one)")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = Settings.from_env()
        for kind in (netguard.PROBE, netguard.HOOK):  # a bad allowlist stops start-up, not the first probe
            netguard.policy(settings, kind)
    except SettingsError as exc:
        print(f"paramedic-operator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else getattr(logging, settings.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the useful ones
    if not args.verbose:
        # "Handler 'service_event' succeeded" for every watch event of every object, on every replica.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if settings.kubeconfig:
        os.environ["KUBECONFIG"] = settings.kubeconfig  # Kopf's login reads it
    namespaces = args.namespace or ([] if args.all_namespaces else settings.watch_namespaces)

    # Kopf waits silently for what is missing; the preflight says what, and waits loudly.
    try:
        verdict = preflight.wait_until_ready(settings, namespaces, leases=not args.standalone)
    except preflight.ConfigurationError as exc:
        logging.getLogger("paramedic.operator").error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    from . import handlers  # noqa: F401  (registers the handlers)
    from .shards import default_identity
    from .wiring import Memo

    kopf_settings = kopf.OperatorSettings()
    kopf_settings.scanning.disabled = not verdict.scanning
    kopf.run(
        settings=kopf_settings,
        clusterwide=not namespaces,
        namespaces=namespaces,
        # Every replica sees every event and acts on its own shards (operator/shards.py):
        # Kopf's peering, which pauses all replicas but one, is not used.
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        # The handlers' typed memo: the startup handler builds the Operator into it.
        memo=Memo(identity=args.identity or default_identity(settings), standalone=args.standalone),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
