"""Run benchmarks by name (all when none is given); one JSON object per line on stdout."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHMARKS = {
    "sending": "bench.sending",
    "preparing": "bench.preparing",
    "tracking": "bench.tracking",
    "referrals": "bench.referrals",
    "relay": "bench.relay",
    "audit": "bench.audit",
    "sync": "bench.sync",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--postgres", metavar="URL",
                        help="also time on this (empty) PostgreSQL database, where supported")
    parser.add_argument("--url", metavar="URL",
                        help="sync: the (empty) server database to use instead of a throwaway "
                             "PostgreSQL")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in args.names or list(BENCHMARKS):
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as exc:
            print(json.dumps({"name": name, "error": f"not available: {exc}"}), flush=True)
            continue
        options = {"postgres": args.postgres} if args.postgres and name == "referrals" else {}
        if name == "sync" and (args.url or args.postgres):
            options = {"url": args.url or args.postgres}
        for result in module.run(quick=args.quick, **options):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
