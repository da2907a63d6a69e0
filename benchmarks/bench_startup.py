"""Start-up cost of the command line: `cmtp --help` and loading a config, against the bare interpreter.

    python benchmarks/bench_startup.py [--runs 15] [--old f41ad7a]

Each command runs `--runs` times as a fresh process, the commands taking turns; the median wall time is reported
with its ratio to the bare interpreter (`python -c pass`). Baselines measured in the same run: `python -c "import apache_beam"`, what every
command paid when the cli imported Beam at the top, and the same commands from the tree at commit `--old`
(before the lazy imports; extracted with git archive into a temporary folder and put first on PYTHONPATH),
so before and after are timed on one machine at one time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trees import old_tree

REPO = Path(__file__).resolve().parent.parent
HELP = "import sys; from cmtp.pipelines.cli import main; sys.argv = ['cmtp', '--help']; main()"
LOAD = "from cmtp.pipelines.config import load_config; load_config('configs/sample.yaml')"


def medians(commands: list[tuple[list[str], dict | None]], runs: int) -> list[float]:
    """The median wall time of each command over `runs` fresh runs, taken in turns (one command after the other,
    `runs` rounds) so that load from elsewhere on the machine falls on all alike; one unmeasured round first."""
    times: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):
        for i, (argv, env) in enumerate(commands):
            started = time.perf_counter()
            subprocess.run(argv, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if round_:
                times[i].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--old", default="f41ad7a", help="the commit to compare with (default: before lazy imports)")
    args = parser.parse_args()
    python, cmtp = sys.executable, str(Path(sys.executable).parent / "cmtp")
    rows = [("python -c pass", [python, "-c", "pass"], None),
            ('python -c "import apache_beam"', [python, "-c", "import apache_beam"], None),
            ("cmtp --help", [cmtp, "--help"], None),
            ("load_config(configs/sample.yaml)", [python, "-c", LOAD], None)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.old:
            env = old_tree(args.old, Path(tmp))
            rows += [(f"cmtp --help at {args.old}", [python, "-c", HELP], env),
                     (f"load_config(configs/sample.yaml) at {args.old}", [python, "-c", LOAD], env)]
        seconds = medians([(argv, env) for _, argv, env in rows], args.runs)
    print(f"median of {args.runs} runs each, taken in turns (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    width = max(len(name) for name, _, _ in rows)
    for (name, _, _), median in zip(rows, seconds):
        print(f"  {name:<{width}}  {median * 1000:7.0f} ms  {median / seconds[0]:5.1f}x the bare interpreter")


if __name__ == "__main__":
    main()
