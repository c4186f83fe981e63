"""Run the benchmarks and print their figures: `python -m bench.run_all [--quick] [NAME ...]`.

Each benchmark gets its own control plane (unless PARAMEDIC_KUBECONFIG names a
running one), starts its own processes and cleans up. Figures and targets are
printed at the end; `--json FILE` also writes them as JSON. Missed targets do
not fail the run (these are measurements, not tests); a benchmark that could
not run does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime

from .common import Context, Result, control_plane, fmt, log, workdir

BENCHMARKS = ["alert_to_restart", "webhook_throughput", "storm", "probe_scale", "probe_memory", "operator_scale",
              "heal_real", "console_list", "evidence_cost", "scale_out"]


def machine() -> dict[str, str]:
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.dirname(__file__))).stdout.strip()
    except OSError:
        commit = ""
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpus": str(os.cpu_count()),
            "cpu": cpu, "memory": mem, "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(), "commit": commit,
            "cluster": os.environ.get("PARAMEDIC_KUBECONFIG") or "fresh DevCluster per benchmark",
            "operator": "paramedic-operator (as shipped)"}


def run_one(name: str, quick: bool, keep: bool) -> Result:
    module = importlib.import_module(f"bench.{name}")
    result = Result(name)
    wd = workdir(name)
    started = time.monotonic()
    print(f"== {name}{' (quick)' if quick else ''}", file=sys.stderr, flush=True)
    try:
        with control_plane(wd, real_node=getattr(module, "REAL_NODE", False)) as kubeconfig:
            ctx = Context(kubeconfig, wd, quick, private=not os.environ.get("PARAMEDIC_KUBECONFIG"))
            try:
                module.run(ctx, result)
            finally:
                ctx.close()
    except Exception as exc:
        result.error = f"{exc.__class__.__name__}: {exc}"
        traceback.print_exc()
        keep = True
    result.seconds = time.monotonic() - started
    if keep:
        log(f"logs kept in {wd}")
    else:
        shutil.rmtree(wd, ignore_errors=True)
    return result


def report(results: list[Result], info: dict[str, str], argv: list[str]) -> str:
    lines = ["", "# Paramedic benchmarks", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines.append(f"- command: python -m bench.run_all {' '.join(argv)}".rstrip())
    for r in results:
        lines += ["", f"## {r.name} ({r.seconds:.0f} s)"]
        if r.error:
            lines.append(f"- ERROR: {r.error}")
        for k, v in r.figures.items():
            lines.append(f"- {k}: {fmt(v)}")
        for c in r.checks:
            lines.append(f"- target {c.line()}")
        for note in r.notes:
            lines.append(f"- note: {note}")
    met = sum(c.met for r in results for c in r.checks)
    total = sum(len(r.checks) for r in results)
    lines += ["", f"targets met: {met}/{total}" + (f"; {sum(bool(r.error) for r in results)} benchmark(s) failed"
                                                    if any(r.error for r in results) else "")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    p.add_argument("--quick", action="store_true", help="smaller counts and shorter windows (a smoke run)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep each benchmark's scratch directory (logs)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    info = machine()
    started = time.monotonic()
    results = [run_one(name, args.quick, args.keep) for name in (args.names or BENCHMARKS)]
    info["total time"] = f"{time.monotonic() - started:.0f} s"
    print(report(results, info, argv))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "argv": argv, "results": [r.as_dict() for r in results]}, f, indent=1)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
