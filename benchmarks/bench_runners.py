"""Wall time of `cmtp run` on each runner, side by side: Beam's in-process FnApiRunner against real Flink and Spark
clusters on this machine (docs/runners.md).

    python benchmarks/bench_runners.py [--inputs sample,200000] [--runners local,flink-embedded,flink,spark]
                                       [--repeats 1] [--json out.json]

Inputs: `sample` is configs/sample.yaml as it is (the embedded sample, scorer on); a number N is N CSL pairs made
from real ones by benchmarks/bench_pipeline.py (`generate`, ~20% copies and near copies) with configs/sample.yaml's
cleaning and the scorer off (`write_config(..., "near")`), in a temp dir.

Runners (each `cmtp run` a child process; its wall time from start to exit, job server start-up included):
  local           FnApiRunner, in the process
  flink-embedded  --profile flink --flink_master=[local]: the job server's own Flink cluster, parallelism 2
  flink           --profile flink against the standalone Flink cluster of .ci/flink-cluster (JobManager and
                  TaskManager processes; 2 slots, 512 MB managed memory), parallelism 2
  spark           --profile spark against the standalone Spark cluster of .ci/spark-cluster (master and worker
                  processes; 2 cores)
The job server jars come from .ci/jobserver (Maven) and the clusters from .ci/flink-cluster and .ci/spark-cluster,
started here unless $CMTP_FLINK_MASTER / $CMTP_SPARK_MASTER name running ones, and stopped at the end if started
here. Python workers run in one EXTERNAL worker pool (Beam's worker_pool_main) started here. Repeats are
interleaved across runners; printed: the median wall per runner and input, its ratio to local's, and whether the
run's report equals local's (kept, rejected, per-stage counts).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import generate, write_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CI = REPO / ".ci"
RUNNERS = ("local", "flink-embedded", "flink", "spark")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ci(*args: str) -> str:
    return subprocess.run([str(CI / args[0]), *args[1:]], check=True, capture_output=True, text=True).stdout.strip()


class Services:
    """Job server jars, clusters and a worker pool, as the runners need them; stopped on exit."""

    def __init__(self, runners: list[str], work: Path):
        self.flags: dict[str, list[str]] = {"local": []}
        self._started: list[str] = []
        self._pool = None
        if runners == ["local"]:
            return
        port = free_port()
        env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
        self._pool = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                                       f"--service_port={port}"], stdout=open(work / "pool.log", "wb"),
                                      stderr=subprocess.STDOUT, env=env)
        time.sleep(3)
        pool = f"--environment_config=localhost:{port}"
        if {"flink", "flink-embedded"} & set(runners):
            jar = f"--flink_job_server_jar={ci('jobserver', 'flink')}"
            self.flags["flink-embedded"] = ["--profile", "flink", "--flink_master=[local]", jar, pool]
            if "flink" in runners:
                self.flags["flink"] = ["--profile", "flink", f"--flink_master={self._cluster('flink')}", jar, pool]
        if "spark" in runners:
            jar = f"--spark_job_server_jar={ci('jobserver', 'spark')}"
            self.flags["spark"] = ["--profile", "spark", f"--spark_master_url={self._cluster('spark')}", jar, pool]

    def _cluster(self, name: str) -> str:
        given = os.environ.get(f"CMTP_{name.upper()}_MASTER")
        if given:
            return given
        self._started.append(name)
        return ci(f"{name}-cluster", "start")

    def stop(self) -> None:
        for name in self._started:
            subprocess.run([str(CI / f"{name}-cluster"), "stop"], capture_output=True)
        if self._pool is not None:
            self._pool.terminate()
            self._pool.wait(timeout=30)


def run(config: Path, out: Path, flags: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cmtp.pipelines.cli", "run", str(config), "--out", str(out),
                           "--overwrite", *flags], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"cmtp run {' '.join(flags)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, json.loads((out / "report.json").read_text("utf-8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", default="sample,200000")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    runners = [r for r in args.runners.split(",") if r]
    unknown = set(runners) - set(RUNNERS)
    if unknown:
        raise SystemExit(f"unknown runner(s) {sorted(unknown)}; known: {', '.join(RUNNERS)}")
    work = Path(tempfile.mkdtemp(prefix="bench-runners-"))
    configs = {}
    for name in args.inputs.split(","):
        if name == "sample":
            configs[name] = REPO / "configs" / "sample.yaml"
        else:
            folder = work / f"in-{name}"
            generate(int(name), folder, 8)
            configs[name] = write_config(work / f"{name}.yaml", sorted(folder.glob("*.tsv")), "near")
    services = Services(runners, work)
    results: dict = {}
    try:
        for name, config in configs.items():
            for repeat in range(args.repeats):
                for runner in runners if repeat % 2 == 0 else runners[::-1]:
                    wall, report = run(config, work / f"out-{name}-{runner}", services.flags[runner])
                    entry = results.setdefault(name, {}).setdefault(runner, {"walls": [], "report": report})
                    entry["walls"].append(round(wall, 1))
                    print(f"{name} {runner} rep {repeat + 1}: {wall:.1f} s", flush=True)
    finally:
        services.stop()
    print(f"\nwall of `cmtp run`, median of {args.repeats}; ratio to local's; same report as local's")
    print("| input | " + " | ".join(runners) + " |\n|---|" + "---:|" * len(runners))
    for name, by_runner in results.items():
        local = by_runner.get("local")
        cells = []
        for runner in runners:
            entry = by_runner[runner]
            wall = statistics.median(entry["walls"])
            ratio = f" ({wall / statistics.median(local['walls']):.2f}x)" if local and runner != "local" else ""
            same = "" if not local or runner == "local" else (", same" if entry["report"] == local["report"] else
                                                                ", REPORT DIFFERS")
            cells.append(f"{wall:.1f} s{ratio}{same}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({n: {r: e["walls"] for r, e in by.items()} for n, by in results.items()},
                                              indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
