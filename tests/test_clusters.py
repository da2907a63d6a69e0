"""Real Flink and Spark: `cmtp run --profile flink|spark` through Beam's Java job servers, on clusters of separate
processes on loopback, must write what a local FnApiRunner run of the same config writes.

What they need, .ci/run starts before the tests and names in the environment:
  CMTP_FLINK_JOB_SERVER_JAR  .ci/jobserver flink: Beam 2.62.0's Flink 1.19 job server, built with Maven
  CMTP_FLINK_MASTER          .ci/flink-cluster start: a standalone Flink 1.19.0 JobManager and TaskManager
  CMTP_SPARK_JOB_SERVER_JAR  .ci/jobserver spark
  CMTP_SPARK_MASTER          .ci/spark-cluster start: a Spark standalone master and worker
With CMTP_CLUSTERS=required (.ci/run sets it) a missing one fails the test; elsewhere it is skipped, except the
Flink jar, which the fixture builds with .ci/jobserver when Maven is there. Python workers run in an EXTERNAL
worker pool (Beam's worker_pool_main), as beside a cluster's task managers: never in the submitting process.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_end_to_end import read_dir, run_cli, same_row

from cmtp.pipelines.cli import main
from cmtp.schemas import LABELED_SCHEMA, PAIR_SCHEMA, REJECT_SCHEMA
from conftest import REPO

SAMPLE = REPO / "configs" / "sample.yaml"
LABELED = REPO / "configs" / "sample-labeled.yaml"
DATA_SCHEMA = {SAMPLE: PAIR_SCHEMA, LABELED: LABELED_SCHEMA}
REQUIRED = os.environ.get("CMTP_CLUSTERS") == "required"
sys.path.insert(0, str(REPO / "benchmarks"))


def needed(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        message = f"${variable} is not set: {what}"
        if REQUIRED:
            pytest.fail(message + " (.ci/run starts it; CMTP_CLUSTERS=required)")
        pytest.skip(message)
    return value


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(command: list[str], port: int, log: Path) -> subprocess.Popen:
    """A service as a subprocess, up once its port accepts connections. Python workers are started as `python`
    from PATH (worker_pool_main), so this interpreter's directory goes first."""
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    with open(log, "wb") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError(f"{command[:3]} did not listen on {port} in 120 s: {log.read_text(errors='replace')[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def flink_jar() -> str:
    """Beam's Flink job server jar: $CMTP_FLINK_JOB_SERVER_JAR, or built here with .ci/jobserver."""
    jar = os.environ.get("CMTP_FLINK_JOB_SERVER_JAR")
    if not jar and not REQUIRED and shutil.which("mvn"):
        built = subprocess.run([str(REPO / ".ci" / "jobserver"), "flink"], capture_output=True, text=True)
        jar = built.stdout.strip() if built.returncode == 0 else None
    jar = jar or needed("CMTP_FLINK_JOB_SERVER_JAR", "the Flink job server jar (.ci/jobserver flink)")
    assert Path(jar).is_file(), jar
    return jar


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """An EXTERNAL worker pool: the SDK harnesses the task managers' operators talk to."""
    port, log = free_port(), tmp_path_factory.mktemp("pool") / "worker_pool.log"
    process = start([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
                    port, log)
    yield {"address": f"localhost:{port}", "log": log}
    stop(process)


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> dict:
    """FnApiRunner runs of the two samples, made when first asked for."""
    made: dict = {}

    def get(config: Path) -> Path:
        if config not in made:
            made[config] = tmp_path_factory.mktemp("local") / config.stem
            run_cli(config, made[config])
        return made[config]

    return get


def rows(directory: Path, schema) -> list[dict]:
    """Every row of a run's table (data or rejects), read as the end-to-end tests read it (schema and codec
    checked), in an order that does not depend on the runner."""
    return sorted(read_dir(directory, schema), key=lambda row: json.dumps({k: v for k, v in row.items() if not isinstance(v, float)},
                                                    sort_keys=True, default=str, ensure_ascii=False))


def same(a, b) -> bool:
    """Equal, floats within 1e-5 (a score may move in its last bits with the batch it was encoded in), at any
    depth; a pair row by the end-to-end tests' own rule."""
    if isinstance(a, dict) and isinstance(b, dict):
        if {"score", "margin", "rank"} <= a.keys():
            return same_row(a, b)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, abs=1e-5)
    return a == b


def assert_same_run(out: Path, local: Path, config: Path) -> dict:
    """The cluster run's own report balances and equals the local run's; its config, kept rows and rejects are the
    local run's."""
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    assert report == json.loads((local / "report.json").read_text("utf-8"))
    assert (out / "config.yaml").read_text("utf-8") == (local / "config.yaml").read_text("utf-8")
    for table, schema in (("data", DATA_SCHEMA[config]), ("rejects", REJECT_SCHEMA)):
        got, want = rows(out / table, schema), rows(local / table, schema)
        assert len(got) == len(want) > 0, table
        for a, b in zip(got, want):
            assert same(a, b), (table, a, b)
    return report


def flink_jobs(master: str) -> list[dict]:
    with urllib.request.urlopen(f"http://{master}/jobs/overview", timeout=10) as response:
        return json.load(response)["jobs"]


def test_flink_standalone_cluster_gives_the_local_rows(flink_jar, pool, local_runs, tmp_path):
    """A JobManager and a TaskManager, each its own process (.ci/flink-cluster); cmtp's runner starts the job
    server from the jar. The job is one of the cluster's, and it finished."""
    out, job = run_on_cluster("flink", SAMPLE, flink_jar, pool, tmp_path)
    assert job["name"].startswith("BeamApp")
    assert_same_run(out, local_runs(SAMPLE), SAMPLE)


def test_flink_embedded_cluster_behind_a_running_job_server_takes_the_labeled_run(flink_jar, pool, local_runs,
                                                                                  tmp_path):
    """A job server started on its own, as a user runs one, with its embedded Flink cluster (flink_master [local],
    parallelism 2): `--job_endpoint` instead of the jar; the labeled sample. The cluster's configuration reaches the
    job as cmtp's --flink_conf_dir (configs/flink/)."""
    port, log = free_port(), tmp_path / "job_server.log"
    server = start(["java", "-Xss64m", "-jar", flink_jar, "--flink-master=[local]", f"--job-port={port}",
                    "--artifact-port=0", "--expansion-port=0"], port, log)
    try:
        out = tmp_path / "flink"
        assert main(["run", str(LABELED), "--profile", "flink", "--flink_master=[local]", f"--job_endpoint=localhost:{port}",
                     f"--environment_config={pool['address']}", "--out", str(out)]) == 0
    finally:
        stop(server)
    job_server = log.read_text(errors="replace")
    assert "Flink Mini Cluster started successfully" in job_server  # Flink ran it, not a stand-in
    assert "Starting worker with command" in pool["log"].read_text(errors="replace")
    assert_same_run(out, local_runs(LABELED), LABELED)


def run_on_cluster(name: str, config: Path, jar: str, pool: dict, tmp_path: Path) -> tuple[Path, dict]:
    """`cmtp run --profile NAME` against the standalone cluster (flink or spark), the runner starting the job server
    from the jar. The run must be the cluster's one new job (Flink) or application (Spark), and finished: its output
    folder, and the cluster's entry for it."""
    master = needed(f"CMTP_{name.upper()}_MASTER", f"a standalone {name} cluster (.ci/{name}-cluster start)")
    if name == "flink":
        listed, key, flags = lambda: flink_jobs(master), "jid", [f"--flink_master={master}", f"--flink_job_server_jar={jar}"]
    else:
        ui = os.environ.get("CMTP_SPARK_MASTER_UI", "127.0.0.1:8090")
        listed, key, flags = lambda: spark_apps(ui), "id", [f"--spark_master_url={master}", f"--spark_job_server_jar={jar}"]
    before = {entry[key] for entry in listed()}
    out = tmp_path / name
    assert main(["run", str(config), "--profile", name, *flags, f"--environment_config={pool['address']}",
                 "--out", str(out)]) == 0
    new = [entry for entry in listed() if entry[key] not in before]
    assert [entry["state"] for entry in new] == ["FINISHED"], new
    return out, new[0]


@pytest.fixture(scope="session")
def spark_jar() -> str:
    jar = needed("CMTP_SPARK_JOB_SERVER_JAR", "the Spark job server jar (.ci/jobserver spark)")
    assert Path(jar).is_file(), jar
    return jar


def spark_apps(master_ui: str) -> list[dict]:
    with urllib.request.urlopen(f"http://{master_ui}/json/", timeout=10) as response:
        return json.load(response)["completedapps"]


@pytest.mark.parametrize("config", [SAMPLE, LABELED], ids=["unlabeled", "labeled"])
def test_spark_standalone_cluster_gives_the_local_rows(config, spark_jar, pool, local_runs, tmp_path):
    """A Spark master and a worker, each its own process (.ci/spark-cluster); the job server is the Spark driver,
    and the run is an application of the master's that finished."""
    out, app = run_on_cluster("spark", config, spark_jar, pool, tmp_path)
    assert app["cores"] > 0  # it ran on the worker's executors, not in a local master
    assert_same_run(out, local_runs(config), config)


SPILL_PAIRS = 200_000


def test_flink_standalone_cluster_spills_200k_pairs_with_balanced_counts_and_bounded_shards(flink_jar, pool,
                                                                                            shared_data, tmp_path):
    """200k CSL pairs made from real ones (benchmarks/bench_pipeline.py: ~20% copies and near copies), the sample's
    cleaning without the scorer, on the standalone cluster: its TaskManager has 512 MB of managed memory for ~400
    tasks' sorters, and the run's exchanges are blocking files (BATCH_FORCED), so both spill. It completes, every
    pair is accounted for, and every shard is bounded as output.shard_mb says (4 MB here, so there are many)."""
    import yaml
    from bench_pipeline import generate, write_config

    needed("CMTP_FLINK_MASTER", "a standalone flink cluster (.ci/flink-cluster start)")
    generate(SPILL_PAIRS, tmp_path / "in", 8)
    config = write_config(tmp_path / "near.yaml", sorted((tmp_path / "in").glob("*.tsv")), "near")
    settings = yaml.safe_load(config.read_text("utf-8"))
    settings["output"] = {"shard_mb": 4, "row_group_mb": 1}
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    out, _ = run_on_cluster("flink", config, flink_jar, pool, tmp_path)
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    totals = report["totals"]
    assert totals["records_read"] == SPILL_PAIRS
    assert totals["pairs_kept"] + totals["pairs_dropped"] == totals["pairs_extracted"] == SPILL_PAIRS
    assert 0.7 * SPILL_PAIRS < totals["pairs_kept"] < 0.9 * SPILL_PAIRS  # the copies went, the rest stayed
    for table, count in (("data", totals["pairs_kept"]), ("rejects", totals["pairs_dropped"])):
        shards = sorted((out / table).glob("part-*-of-*.parquet"))
        assert sum(pq.ParquetFile(s).metadata.num_rows for s in shards) == count
        # a shard closes after shard_mb / row_group_mb = 4 row groups, each closed once it holds 1 MB of text
        # *characters* (transforms/parquet_shards.py), up to 3 bytes each in UTF-8: 12 MB before zstd at most
        assert all(pq.ParquetFile(s).metadata.num_row_groups <= 4 and s.stat().st_size < 12 << 20 for s in shards)
    assert len(list((out / "data").glob("part-*.parquet"))) > 10
