"""Runners other than the local FnApiRunner, offline.

Dataflow: `--dry_run=True` builds the whole job (pipeline graph, options, the worker environment Dataflow
would receive) without credentials or network; bad options are refused by Beam's validator first.
Flink and Spark: their profiles reach Beam, and a run that would download a job server is refused; the runs on
real clusters are tests/test_clusters.py.
"""
from __future__ import annotations

import json
import socket
import tarfile
import tempfile
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import FlinkRunnerOptions, JobServerOptions, PortableOptions, StandardOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.dataflow.internal import apiclient
from apache_beam.runners.portability.flink_runner import FlinkRunner

from cmtp.configs import FLINK_CONF
from cmtp.pipelines.cli import UsageError, main, run, runner_options
from cmtp.pipelines.config import load_config
from cmtp.pipelines.job_servers import FlinkJobOptions
from cmtp.pipelines.profiles import load_profile
from conftest import REPO

SAMPLE = REPO / "configs" / "sample.yaml"
LABELED = REPO / "configs" / "sample-labeled.yaml"
OUT = "gs://cmtp-test-bucket/runs/x"
CLOUD = ["--project=cmtp-test", "--temp_location=gs://cmtp-test-bucket/tmp",
         "--staging_location=gs://cmtp-test-bucket/staging"]
ACCELERATOR = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
IMAGE = "us-central1-docker.pkg.dev/cmtp-test/cmtp/cmtp-gpu:1"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


# --- Dataflow -------------------------------------------------------------------------------------------

@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Every attempt to reach another host fails and is recorded (name lookups included); Beam's temporary
    files (the sdist of --setup_file) go under tmp_path; child processes may not reach a package index."""
    attempts: list = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family != socket.AF_UNIX and address[0] not in LOOPBACK_HOSTS:
            attempts.append(address)
            raise OSError(f"test: network is off ({address})")
        return connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK_HOSTS and host is not None:
            attempts.append(host)
            raise socket.gaierror(f"test: network is off ({host})")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # an empty gcloud config: no default region
    monkeypatch.delenv("CLOUDSDK_COMPUTE_REGION", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return attempts


def dry_run(config: Path, *flags: str, profile: str = "dataflow") -> apiclient.Job:
    """`cmtp run CONFIG --profile dataflow --out gs://... FLAGS --dry_run=True`, through cli.run as _run_command
    calls it; returns the built job."""
    loaded_profile = load_profile(profile)
    report = run(load_config(str(config), loaded_profile.config), OUT,
                 loaded_profile.args + CLOUD + list(flags) + ["--dry_run=True"])
    assert report["dry_run"] is True and isinstance(report["job"], apiclient.Job)
    return report["job"]


def environment(job: apiclient.Job):
    """The Dataflow Environment the submission would send (worker pool, service options, experiments, the
    SDK's pipeline options), built by Beam's own apiclient offline: a dry run stops before it builds it."""
    return apiclient.Environment(
        packages=[], options=job.options, environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url="gs://cmtp-test-bucket/staging/pipeline.pb", proto_pipeline=job.proto_pipeline,
    ).proto


def stage_names(job: apiclient.Job) -> set[str]:
    return {t.unique_name for t in job.proto_pipeline.components.transforms.values() if "/" not in t.unique_name}


def docker_environments(job: apiclient.Job) -> list:
    envs = list(job.proto_pipeline.components.environments.values())
    assert envs and all(env.urn == "beam:env:docker:v1" for env in envs)
    return envs


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # --setup_file=./setup.py is relative, as a user in the checkout would give it


def test_dataflow_dry_run_builds_the_whole_job_offline(offline, in_repo, tmp_path):
    job = dry_run(SAMPLE, "--setup_file=./setup.py", f"--sdk_container_image={IMAGE}")
    assert offline == [], f"the dry run tried the network: {offline}"

    # the pipeline: every stage of the unlabeled pipeline, one Read per source of the config
    sources = {"wudao", "zhihu", "baike", "news", "csl", "xlsum", "amazon_reviews", "cmrc2018",
               "wiki_atomic_edits", "dureader", "zhidao"}
    names = stage_names(job)
    expected = {f"Read {name}" for name in sources} | {
        "Extract", "Normalize", "GeneralFilter", "MaskPII", "ExactDedup pair", "FirstPerPassage", "NearDedup", "BestPerPassage",
        "SemanticFilter", "WritePairs", "WriteRejects", "Report"}
    assert expected <= names, sorted(expected - names)
    assert {n for n in names if n.startswith("Read ")} == {f"Read {name}" for name in sources}
    every = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert any(n.startswith("SemanticFilter/") for n in every) and any(n.startswith("NearDedup/") for n in every)

    # the job itself: a batch job named by the profile, its steps in the portable pipeline (runner v2)
    assert job.proto.name == "cmtp"
    assert job.proto.type_ == apiclient.dataflow.JobType.JOB_TYPE_BATCH
    assert list(job.proto.steps) == []
    assert json.loads(type(job.proto).to_json(job.proto))["name"] == "cmtp"

    # the SDK harness runs in the given image; the setup.py's sdist is an artifact staged as workflow.tar.gz
    (env,) = docker_environments(job)
    assert beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == IMAGE
    staged = {beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(d.role_payload).staged_name:
              beam_runner_api_pb2.ArtifactFilePayload.FromString(d.type_payload).path for d in env.dependencies}
    assert "workflow.tar.gz" in staged
    sdist = Path(staged["workflow.tar.gz"])
    assert sdist.is_file() and tmp_path in sdist.parents  # built locally (python -m build --no-isolation)
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert any(m.endswith("/setup.py") for m in members)
    assert any(m.endswith("/pipelines/cli.py") for m in members)
    assert any(m.endswith("/configs/profiles/dataflow.yaml") for m in members)

    # what the service would receive: machine type, GPU, experiments, image, options for the workers
    dataflow_env = environment(job)
    (pool,) = dataflow_env.worker_pools
    assert pool.machine_type == "g2-standard-8"
    assert pool.worker_harness_container_image == IMAGE
    assert [image.container_image for image in pool.sdk_harness_container_images] == [IMAGE]
    assert pool.num_threads_per_worker == 4
    assert pool.autoscaling_settings.max_num_workers == 40
    assert pool.disk_size_gb == 100
    assert list(dataflow_env.service_options) == [ACCELERATOR]
    experiments = list(dataflow_env.experiments)
    assert "no_use_multiple_sdk_containers" in experiments and "use_multiple_sdk_containers" not in experiments
    assert "use_runner_v2" in experiments
    sent = type(dataflow_env).to_dict(dataflow_env)["sdk_pipeline_options"]["options"]
    assert sent["setup_file"] == "./setup.py"
    assert sent["sdk_container_image"] == IMAGE
    assert sent["machine_type"] == "g2-standard-8"
    assert sent["dataflow_service_options"] == [ACCELERATOR]
    assert "no_use_multiple_sdk_containers" in sent["experiments"]
    assert (sent["project"], sent["region"], sent["runner"]) == ("cmtp-test", "us-central1", "DataflowRunner")
    assert sent["temp_location"].startswith("gs://cmtp-test-bucket/tmp/cmtp.")
    assert sent["staging_location"].startswith("gs://cmtp-test-bucket/staging/cmtp.")


def test_dataflow_dry_run_of_the_labeled_pipeline(offline):
    job = dry_run(LABELED)
    assert offline == []
    names = stage_names(job)
    assert {"Judge", "Normalize", "GeneralFilter", "ExactDedup", "DedupPositives", "MineNegatives", "Report",
            "WriteRecords", "WriteRejects", "Read t2ranking qrels", "Read mmarco triples",
            "Read dureader_retrieval rows"} <= names
    # without --sdk_container_image on the command line, the profile's image (placeholder included) is used
    (env,) = docker_environments(job)
    image = "us-central1-docker.pkg.dev/PROJECT/cmtp/cmtp-gpu:latest"
    assert beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == image
    assert environment(job).worker_pools[0].worker_harness_container_image == image


def test_dataflow_command_line_flags_override_the_profile(offline):
    job = dry_run(SAMPLE, "--machine_type=g2-standard-16", "--max_num_workers=3", "--region=europe-west4",
                     "--experiments=shuffle_mode=service")
    assert offline == []
    dataflow_env = environment(job)
    assert dataflow_env.worker_pools[0].machine_type == "g2-standard-16"
    assert dataflow_env.worker_pools[0].autoscaling_settings.max_num_workers == 3
    assert job.options.get_all_options()["region"] == "europe-west4"
    # list flags add to the profile's (Beam's flags append): both experiments are sent
    experiments = list(dataflow_env.experiments)
    assert "no_use_multiple_sdk_containers" in experiments and "shuffle_mode=service" in experiments


def test_dataflow_dry_run_through_main(offline, capsys):
    code = main(["run", str(SAMPLE), "--profile", "dataflow", "--out", OUT, *CLOUD, "--dry_run=True"])
    assert code == 0
    assert capsys.readouterr().out.startswith("dry run: the job was built and not submitted")
    assert offline == []


@pytest.mark.parametrize("flags, messages", [
    # the shipped profile unedited: every placeholder is named
    ([], ["Invalid GCS bucket (gs://BUCKET/tmp), given for the option: temp_location.",
          "Invalid GCS bucket (gs://BUCKET/staging), given for the option: staging_location.",
          "Invalid Project ID (PROJECT)."]),
    # the buckets filled in, the project not: refused before Beam checks the buckets on GCS
    (CLOUD[1:], ["Invalid Project ID (PROJECT)."]),
    (CLOUD + ["--job_name=CMTP_run"], ["Invalid job_name (CMTP_run)"]),
    (CLOUD + ["--worker_region=us-east1", "--worker_zone=us-east1-b"],
     ["worker_region and worker_zone are mutually exclusive."]),
    (CLOUD + ["--temp_location=/tmp/local"], []),  # one bad location: Beam uses the other for both; no error
])
def test_invalid_dataflow_options_are_refused_before_any_network_call(offline, capsys, flags, messages):
    if not messages:  # the accepted case is checked offline as a dry run
        assert main(["run", str(SAMPLE), "--profile", "dataflow", "--out", OUT, *flags, "--dry_run=True"]) == 0
        assert offline == []
        return
    code = main(["run", str(SAMPLE), "--profile", "dataflow", "--out", OUT, *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("cmtp: error: invalid Dataflow options: ") and "\n" not in err
    for message in messages:
        assert message in err
    assert offline == [], f"tried the network before refusing: {offline}"  # what made refusals take minutes


@pytest.mark.parametrize("flags, message", [
    (["--project=cmtp-test"], "Missing required option: region."),  # no region and no gcloud default
    (["--region=us-central1"], "Missing required option: project."),
])
def test_missing_project_or_region_is_refused(offline, capsys, flags, message):
    code = main(["run", str(SAMPLE), "--out", OUT, "--runner=DataflowRunner",
                 "--temp_location=gs://cmtp-test-bucket/tmp", *flags])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"cmtp: error: invalid Dataflow options: {message}"
    assert offline == []


# --- profiles -------------------------------------------------------------------------------------------

def with_profile(name: str, *flags: str):
    return runner_options(load_profile(name).args + list(flags))


@pytest.fixture
def jar(tmp_path) -> Path:
    """A file where a job server jar is named: the options are checked, nothing is started."""
    path = tmp_path / "job-server.jar"
    path.write_bytes(b"")
    return path


def test_flink_profile_reaches_beam(jar):
    options, runner = with_profile("flink", f"--flink_job_server_jar={jar}")
    assert isinstance(runner, FlinkRunner)
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    portable = options.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", "localhost:50000")
    flink = options.view_as(FlinkRunnerOptions)
    assert (flink.flink_master, flink.parallelism, flink.flink_version) == ("localhost:8081", 2, "1.19")
    # a job server started from the jar gets its stack; a cluster of the user's keeps its own configuration
    assert options.view_as(JobServerOptions).job_server_jvm_properties == ["-Xss64m"]
    assert options.view_as(FlinkJobOptions).flink_conf_dir is None
    # a flag after the profile's wins; the embedded cluster gets the shipped configuration, which reaches the job
    options, _ = with_profile("flink", f"--flink_job_server_jar={jar}", "--parallelism=3", "--flink_master=[local]")
    assert options.view_as(FlinkRunnerOptions).parallelism == 3
    assert options.view_as(FlinkJobOptions).flink_conf_dir == str(FLINK_CONF)
    assert options.get_all_options()["flink_conf_dir"] == str(FLINK_CONF)
    assert (FLINK_CONF / "flink-conf.yaml").is_file()
    # a running job server instead of a jar: nothing is started, so no JVM flags
    options, _ = with_profile("flink", "--job_endpoint=localhost:1")
    assert options.view_as(PortableOptions).job_endpoint == "localhost:1"
    assert options.view_as(JobServerOptions).job_server_jvm_properties == []


def test_spark_profile_reaches_beam(jar):
    from apache_beam.options.pipeline_options import SparkRunnerOptions
    from apache_beam.runners.portability.spark_runner import SparkRunner

    options, runner = with_profile("spark", f"--spark_job_server_jar={jar}")
    assert isinstance(runner, SparkRunner)
    assert options.view_as(SparkRunnerOptions).spark_master_url == "spark://localhost:7077"
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"


@pytest.mark.parametrize("profile, flags, message", [
    ("flink", [], "--runner=FlinkRunner needs --job_endpoint (a job server that is running) or "
                  "--flink_job_server_jar (a job server jar on this machine; .ci/jobserver flink builds one with "
                  "Maven, see docs/runners.md): without either, Beam would download one at run time"),
    ("spark", [], "--runner=SparkRunner needs --job_endpoint (a job server that is running) or "
                  "--spark_job_server_jar (a job server jar on this machine; .ci/jobserver spark builds one with "
                  "Maven, see docs/runners.md): without either, Beam would download one at run time"),
    ("flink", ["--flink_job_server_jar=/nonexistent/js.jar"], "--flink_job_server_jar=/nonexistent/js.jar: no such file"),
])
def test_a_run_that_would_download_a_job_server_is_refused(profile, flags, message, tmp_path, capsys):
    assert main(["run", str(SAMPLE), "--profile", profile, "--out", str(tmp_path / "o"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"cmtp: error: {message}"
    assert not (tmp_path / "o").exists()


def test_local_profile_is_the_in_process_runner():
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    profile = load_profile("local")
    assert profile.args == [] and profile.config == {}
    options, runner = runner_options(profile.args)
    assert isinstance(runner, FnApiRunner) and options.view_as(StandardOptions).runner is None


def test_dataflow_profile_unedited_is_refused_by_runner_options():
    with pytest.raises(UsageError, match=r"Invalid Project ID \(PROJECT\)"):
        runner_options(load_profile("dataflow").args)


def test_unknown_profile_exits_2_naming_the_shipped_ones(tmp_path, capsys):
    assert main(["run", str(SAMPLE), "--profile", "nope", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == \
        "cmtp: error: --profile nope: no such profile (shipped: dataflow, flink, local, spark; or give a path)"
    assert not (tmp_path / "o").exists()
