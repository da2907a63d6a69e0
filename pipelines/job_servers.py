"""Flink and Spark through Beam's Java job servers: the option cmtp adds for them, and what `cmtp run` settles
before it submits (docs/runners.md).

Beam's FlinkRunner and SparkRunner submit to a job server: one already running (`--job_endpoint`), or one they
start from a jar (`--flink_job_server_jar`, `--spark_job_server_jar`). Given neither, Beam downloads the jar from
Maven Central at run time; cmtp refuses that before the pipeline is built, and says how to get a jar
(.ci/jobserver builds one from Maven Central with Maven).

A job server cmtp's runner starts from a jar gets a thread stack of STACK: Flink's batch translation deserializes
our plan recursively (one level per operator, ~300 operators), and the JVM's default 1 MB stack overflowed there
(java.lang.StackOverflowError in ObjectInputStream, seen with Beam 2.62's Flink 1.19 job server).

`--flink_conf_dir` is FlinkPipelineOptions' own option, which Beam's Python SDK does not declare: a directory whose
Flink configuration the job server applies to the job. With `--flink_master=[local]` (the job server's embedded
cluster) and no directory given, cmtp gives configs/flink/, whose network memory fits the plan's ~100 shuffles
(Flink's default of 64 MB refused it: "Insufficient number of network buffers").
"""
from __future__ import annotations

import os

from apache_beam.options.pipeline_options import JobServerOptions, PipelineOptions

from cmtp.configs import FLINK_CONF

STACK = "-Xss64m"
JARS = {"FlinkRunner": "flink_job_server_jar", "SparkRunner": "spark_job_server_jar"}
EMBEDDED = ("[local]", "[auto]")
EXECUTION_MODES = ("PIPELINED", "PIPELINED_FORCED", "BATCH", "BATCH_FORCED")


class FlinkJobOptions(PipelineOptions):
    """Two of Java's FlinkPipelineOptions that Beam's Python SDK does not declare; declared, they reach the job."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--flink_conf_dir", default=None,
                            help="a directory of Flink configuration (config.yaml or flink-conf.yaml) the Flink job "
                                 "server applies to the job; configs/flink/ for the embedded cluster ([local])")
        parser.add_argument("--execution_mode_for_batch", default=None, choices=EXECUTION_MODES,
                            help="Flink's exchanges in a batch job: PIPELINED (Flink's default: every task of the "
                                 "plan deployed at once) or BATCH_FORCED (blocking exchanges: one region at a time, "
                                 "spilling to disk); cmtp's default is BATCH_FORCED")


class JobServerError(ValueError):
    """A Flink or Spark run that would fetch a job server at run time, or names a jar that is not there."""


def settle(options: PipelineOptions, runner_name: str) -> None:
    """Refuse a Flink or Spark run with neither a job endpoint nor a local job-server jar; give a job server started
    from a jar its thread stack, and the embedded Flink cluster its configuration. Changes `options` in place."""
    flag = JARS.get(runner_name)
    if flag is None:
        return
    everything = options.get_all_options(retain_unknown_options=True)
    if not everything.get("job_endpoint"):
        jar = everything.get(flag)
        if not jar:
            raise JobServerError(
                f"--runner={runner_name} needs --job_endpoint (a job server that is running) or --{flag} (a job "
                f"server jar on this machine; .ci/jobserver {runner_name[:-6].lower()} builds one with Maven, see "
                "docs/runners.md): without either, Beam would download one at run time")
        if "://" not in jar and not os.path.isfile(jar):
            raise JobServerError(f"--{flag}={jar}: no such file")
        properties = options.view_as(JobServerOptions).job_server_jvm_properties
        if not any(p.startswith("-Xss") for p in properties):
            properties.append(STACK)
    if runner_name == "FlinkRunner":
        flink = options.view_as(FlinkJobOptions)
        if flink.flink_conf_dir is None and everything.get("flink_master") in EMBEDDED:
            flink.flink_conf_dir = str(FLINK_CONF)
        if flink.execution_mode_for_batch is None:
            flink.execution_mode_for_batch = "BATCH_FORCED"

