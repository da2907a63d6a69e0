"""The dataset card a run directory gets (`README.md`): what the dataset holds, C-MTP style, and how it was made.

It is written from the run's report and the kept shards' (source, kind) counts after a local run, or by
`cmtp inspect DIR --card` for a run made elsewhere.
"""
from __future__ import annotations

import os
from typing import Optional

import yaml

from cmtp.pipelines.inspect import InspectError, Selection, inspect_run, reading

# Licenses as the publishers state them (../shared/data/README.md and the datasets' own pages); "not stated"
# where they give none. Check each before redistributing: several are research-only.
LICENSES = {
    "cmrc2018": "CC-BY-SA-4.0",
    "dureader": "Apache-2.0",
    "dureader_retrieval": "Apache-2.0",
    "zhidao": "Apache-2.0 (FlagAI sample)",
    "wudao": "WuDaoCorpora agreement (research use)",
    "ocnli": "CC-BY-NC-2.0",
    "cmedqa2": "GPL-3.0, research only",
    "mmarco": "MS MARCO terms (non-commercial research)",
    "t2ranking": "Apache-2.0",
    "xlsum": "CC-BY-NC-SA-4.0",
}


def _config(run_dir: str, config_text: Optional[str]) -> dict:
    """The run's config.yaml as a dict ({} when absent); InspectError naming the file when it is not YAML."""
    if not config_text:
        return {}
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError as error:
        raise InspectError(f"{os.path.join(run_dir, 'config.yaml')}: not valid YAML: {' '.join(str(error).split())}") \
            from None
    return config if isinstance(config, dict) else {}


def card_text(run_dir: str, config_text: Optional[str] = None) -> str:
    """The card's Markdown for a run directory."""
    result = inspect_run(run_dir, Selection(samples=0))  # counts and funnel only: no pass over the rows
    labeled = result["pipeline"] == "labeled"
    key = "kept_by_source_and_task" if labeled else "kept_by_source_and_kind"
    by_source: dict[str, dict[str, int]] = {}
    for name, n in result[key].items():
        source, kind = name.split("/", 1)
        by_source.setdefault(source, {})[kind] = n
    total = sum(sum(kinds.values()) for kinds in by_source.values())
    unit = "records" if labeled else "pairs"
    lines = [
        f"# C-MTP ({'labeled' if labeled else 'unlabeled'}) built by cmtp",
        "",
        f"{total:,} {unit} in {result['data']['shards']} Parquet shards (`data/`, zstd); "
        f"{result['rejects']['rows']:,} rejects with their stage and reason in `rejects/`; the counts of every "
        f"stage in `report.json` (balanced: {result['balanced']}).",
        "",
        f"| source | {unit} kept | share | {'task' if labeled else 'pair kinds'} | license |",
        "|---|---|---|---|---|",
    ]
    for source, kinds in sorted(by_source.items(), key=lambda item: -sum(item[1].values())):
        n = sum(kinds.values())
        kinds_text = ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items()))
        lines.append(f"| {source} | {n:,} | {n / total:.1%} | {kinds_text} | {LICENSES.get(source, 'not stated')} |")
    lines += ["", f"**total** {total:,} {unit}.", ""]
    config = _config(run_dir, config_text)
    if labeled:
        negatives = config.get("negatives") or {}
        model = f" ({negatives['model']})" if negatives.get("model") else ""
        lines.append(f"Hard negatives: mined with `{negatives.get('backend')}`{model}, "
                     f"{negatives.get('per_record')} per record from ranks {negatives.get('rank_range')}, "
                     f"never above cosine {negatives.get('max_similarity_to_positive')} to a positive.")
    else:
        scoring = config.get("scoring") or {}
        if scoring.get("enabled", True) and scoring:
            model = f" ({scoring['model']})" if scoring.get("model") else ""
            if scoring.get("mode") == "consistency":
                setting = scoring.get("consistency") or {}
                lines.append(f"Semantic filter: `{scoring.get('backend')}`{model}, consistency mode: a pair is kept "
                             f"when its passage ranks in the top {setting.get('k')} for its query among "
                             f"{setting.get('pool_size')} passages sampled from the run (seed {setting.get('seed')}, "
                             f"lexical weight {setting.get('lexical_weight')}); every row keeps its `score` (cosine), "
                             "`rank` and `margin`.")
            else:
                lines.append(f"Semantic filter: `{scoring.get('backend')}`{model}, pairs kept at cosine >= "
                             f"{scoring.get('threshold')} (the threshold belongs to that model); every row keeps its "
                             "`score`.")
    funnel = result["funnel"].get("total")
    if funnel:
        lines += ["", "Funnel: " + " -> ".join(f"{label} {n:,}" for label, n in funnel) + "."]
    if config_text:
        lines += ["", "## The config it ran with", "", "```yaml", config_text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write_card(run_dir: str) -> str:
    """Write `README.md` into a local run directory; returns its path. InspectError for a file of the run it cannot
    read or write."""
    config_path = os.path.join(run_dir, "config.yaml")
    config_text = None
    if os.path.isfile(config_path):
        with reading(config_path), open(config_path, encoding="utf-8") as handle:
            config_text = handle.read()
    text = card_text(run_dir, config_text)
    path = os.path.join(run_dir, "README.md")
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise InspectError(f"{path}: cannot write the card: {error.strerror or error}") from None
    return path
