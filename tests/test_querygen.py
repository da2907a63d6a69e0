"""Query generation: the offline generator on real passages, the chat client against a real HTTP stub on loopback
(retries, cache, the key never stored), and the `querygen` source through a real pipeline run."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice

import pytest

from cmtp.transforms.query_generators import ChatGenerator, GenerationError, OfflineGenerator, parse_queries
from cmtp.transforms.sources import REGISTRY, ExtractError, SourceRecord, SourceSettings
from conftest import REPO

SECRET = "sk-test-do-not-store-7f3a"


def real_passages(shared_data, n: int = 20) -> list[str]:
    with open(shared_data / "csl" / "ts_dev.tsv", encoding="utf-8") as handle:
        return [line.split("\t")[1].strip() for line in islice(handle, n)]


def test_offline_keywords_come_from_the_passage_and_summaries_lead_it(shared_data):
    generator = OfflineGenerator()
    for passage in real_passages(shared_data):
        keywords = generator.generate(passage, "kw", 3)
        summaries = generator.generate(passage, "sm", 1)
        assert len(keywords) == 3 and all(2 <= len(k) <= 12 and k in passage for k in keywords), keywords
        (summary,) = summaries
        assert 4 <= len(summary) <= 64 and passage.startswith(summary[:10]), (summary, passage[:80])
    first = real_passages(shared_data)[0]
    assert generator.generate(first, "kw", 3) == generator.generate(first, "kw", 3)  # deterministic


def test_parse_queries_drops_numbering_bullets_and_repeats():
    assert parse_queries("1. 高铁票价\n2) 高铁票价\n- 动车时刻表\n\n（3）“春运抢票”\n", 5) == ["高铁票价", "动车时刻表", "春运抢票"]
    assert parse_queries("a\nb\nc", 2) == ["a", "b"]


class _Stub(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that fails as told, then answers with numbered queries."""

    script: list[int] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"auth": self.headers.get("Authorization"), "body": body, "path": self.path})
        status = type(self).script.pop(0) if type(self).script else 200
        if status != 200:
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.end_headers()
            return
        prompt = body["messages"][0]["content"]
        content = "1. 关键词一\n2. 关键词二" if "简短" in prompt else "这段文字讲了什么内容"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def serve(handler):
    """A local HTTP server for `handler` on a free loopback port, in a thread: yields its /v1 endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def stub():
    _Stub.script, _Stub.seen = [], []
    yield from serve(_Stub)


def test_chat_client_retries_429_and_500_then_caches(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    _Stub.script = [429, 500]
    chat = ChatGenerator(stub, "stub-model", api_key_env="CMTP_TEST_KEY", cache_dir=str(tmp_path / "cache"),
                         requests_per_minute=6000, backoff_seconds=0.01)
    assert chat.generate("高铁是一种高速铁路交通方式。", "kw", 2) == ["关键词一", "关键词二"]
    assert len(_Stub.seen) == 3 and chat.requests == 3  # 429, 500, then the answer
    assert {s["auth"] for s in _Stub.seen} == {f"Bearer {SECRET}"} and _Stub.seen[0]["path"] == "/v1/chat/completions"
    assert _Stub.seen[0]["body"]["model"] == "stub-model" and "高铁是一种高速铁路交通方式。" in \
        _Stub.seen[0]["body"]["messages"][0]["content"]
    assert chat.generate("高铁是一种高速铁路交通方式。", "kw", 2) == ["关键词一", "关键词二"]
    again = ChatGenerator(stub, "stub-model", api_key_env="CMTP_TEST_KEY", cache_dir=str(tmp_path / "cache"))
    assert again.generate("高铁是一种高速铁路交通方式。", "kw", 2) == ["关键词一", "关键词二"]
    assert len(_Stub.seen) == 3 and again.requests == 0  # a re-run costs nothing
    cached = list((tmp_path / "cache").glob("*.json"))
    assert len(cached) == 1 and SECRET not in cached[0].read_text("utf-8")


def test_chat_client_gives_up_with_a_message_without_the_key(stub, monkeypatch):
    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    _Stub.script = [400]
    chat = ChatGenerator(stub, "m", api_key_env="CMTP_TEST_KEY", cache_dir=None, backoff_seconds=0.01)
    with pytest.raises(GenerationError) as raised:
        chat.generate("文字", "sm", 1)
    assert "HTTP 400" in str(raised.value) and SECRET not in str(raised.value) and len(_Stub.seen) == 1
    _Stub.script = [503, 503, 503]
    with pytest.raises(GenerationError, match="HTTP 503"):
        ChatGenerator(stub, "m", api_key_env="CMTP_TEST_KEY", max_retries=2, backoff_seconds=0.01).generate("字", "sm", 1)
    monkeypatch.delenv("CMTP_TEST_KEY")
    with pytest.raises(GenerationError, match="set the environment variable CMTP_TEST_KEY"):
        ChatGenerator(stub, "m", api_key_env="CMTP_TEST_KEY").generate("字", "sm", 1)


def querygen(options: dict):
    return REGISTRY["querygen"](SourceSettings(options=options))


def csl_records(shared_data, n: int) -> list[SourceRecord]:
    """The first n records of the real CSL title/abstract file, as the csl reader parses them."""
    from cmtp.transforms.io import open_binary

    path = str(shared_data / "csl" / "ts_dev.tsv")
    with open_binary(path) as stream:
        items = list(islice(REGISTRY["csl"]().parse(path, stream), n))
    return [SourceRecord("querygen", path, item.position, item.value) for item in items]


def test_querygen_source_mixes_granularities_and_records_the_generator(shared_data):
    source = querygen({"from_source": "csl", "mix": {"sm": 1, "kw": 2}})
    (record,) = csl_records(shared_data, 1)
    pairs = source.extract(record)
    assert [p.kind for p in pairs] == ["generated_sm", "generated_kw", "generated_kw"]
    assert {p.generator for p in pairs} == {"offline"} and {p.source for p in pairs} == {"querygen"}
    abstract = open(shared_data / "csl" / "ts_dev.tsv", encoding="utf-8").readline().split("\t")[1].strip()
    assert all(p.passage == abstract for p in pairs)


def test_passages_too_close_to_the_evaluation_set_are_not_used(shared_data, tmp_path):
    records = csl_records(shared_data, 2)
    abstract = open(shared_data / "csl" / "ts_dev.tsv", encoding="utf-8").readline().split("\t")[1].strip()
    (tmp_path / "eval.jsonl").write_text(json.dumps({"id": "e1", "text": abstract[:-3] + "。"}, ensure_ascii=False)
                                         + "\n", encoding="utf-8")
    source = querygen({"from_source": "csl", "leakage": {"eval_data": str(tmp_path / "eval.jsonl"), "threshold": 0.6}})
    with pytest.raises(ExtractError) as raised:
        source.extract(records[0])
    assert raised.value.reason == "leaks_eval_set" and "evaluation text e1" in raised.value.detail
    assert source.extract(records[1])  # unrelated: used


def test_querygen_run_with_the_chat_generator_never_stores_the_key(stub, tmp_path, monkeypatch):
    from cmtp.pipelines.cli import main

    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    config = querygen_config(tmp_path, stub, model="stub-model", mix="{sm: 1, kw: 2}", max_retries=5)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"] and report["totals"]["pairs_kept"] > 0
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "data").to_pylist()
    assert {r["generator"] for r in rows} == {"chat:stub-model"}
    assert {r["kind"] for r in rows} == {"generated_sm", "generated_kw"}
    requests = len(_Stub.seen)
    assert requests > 0 and all(s["auth"] == f"Bearer {SECRET}" for s in _Stub.seen)
    stored = [p for p in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")] if p.is_file()]
    assert all(SECRET.encode() not in p.read_bytes() for p in stored)
    assert main(["run", str(config), "--out", str(tmp_path / "again")]) == 0
    assert len(_Stub.seen) == requests  # the re-run was served from the cache


class _Hostile(BaseHTTPRequestHandler):
    """An endpoint that echoes the caller's Authorization header back: in its answers, and in the reason phrase of
    the statuses `script` tells it to fail with."""

    script: list[int] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        echoed = self.headers.get("Authorization", "")
        status = type(self).script.pop(0) if type(self).script else 200
        if status != 200:
            self.send_response(status, f"Failed for {echoed}")
            self.end_headers()
            self.wfile.write(echoed.encode())
            return
        payload = json.dumps({"choices": [{"message": {"content": f"1. 这段文字讲了什么内容，密钥 {echoed}\n2. 高铁票价"}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    _Hostile.script = []
    yield from serve(_Hostile)


def chat_querygen(endpoint: str, cache, **chat) -> object:
    return querygen({"from_source": "csl", "generator": "chat", "mix": {"sm": 1}, "chat": {
        "endpoint": endpoint, "model": "m", "api_key_env": "CMTP_TEST_KEY", "cache_dir": str(cache) if cache else None,
        "requests_per_minute": 6000, "backoff_seconds": 0.01, **chat}})


def test_a_key_the_server_echoes_is_scrubbed_from_answers_errors_and_the_cache(hostile, tmp_path, monkeypatch):
    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    chat = ChatGenerator(hostile, "m", api_key_env="CMTP_TEST_KEY", cache_dir=str(tmp_path / "cache"),
                         requests_per_minute=6000, max_retries=1, backoff_seconds=0.01)
    assert chat.generate("高铁是一种高速铁路交通方式。", "kw", 2) == ["这段文字讲了什么内容，密钥 Bearer ***", "高铁票价"]
    assert all(SECRET not in p.read_text("utf-8") for p in (tmp_path / "cache").glob("*"))
    _Hostile.script = [500, 500]
    with pytest.raises(GenerationError) as raised:
        chat.generate("另一段文字。", "kw", 2)
    assert str(raised.value) == f"{hostile}/chat/completions: HTTP 500 Failed for Bearer *** after 2 attempts"
    assert raised.value.status == 500


def test_an_endpoint_failing_for_good_makes_the_record_a_generate_reject(hostile, shared_data, monkeypatch):
    from cmtp.transforms.sources.querygen import GenerationFailed

    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    (record,) = csl_records(shared_data, 1)
    _Hostile.script = [503, 503]
    with pytest.raises(GenerationFailed) as raised:
        chat_querygen(hostile, None, max_retries=1).extract(record)
    failed = raised.value
    assert (failed.stage, failed.reason, failed.status) == ("generate", "generation_failed", 503)
    assert "1 of 1 passages" in failed.detail and "HTTP 503" in failed.detail and SECRET not in failed.detail
    _Hostile.script = [400]
    with pytest.raises(GenerationFailed, match="HTTP 400"):  # a 4xx other than 401/403 is not retried
        chat_querygen(hostile, None, max_retries=3).extract(record)
    assert not _Hostile.script


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_with_one_line_not_a_reject(hostile, shared_data, monkeypatch, status):
    from cmtp.transforms.query_generators import GenerationAuthError

    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    (record,) = csl_records(shared_data, 1)
    _Hostile.script = [status]
    with pytest.raises(GenerationAuthError) as raised:
        chat_querygen(hostile, None, max_retries=3).extract(record)
    message = str(raised.value)
    assert message == f"{hostile}/chat/completions: HTTP {status} Failed for Bearer ***: the endpoint refused the API key"
    assert not isinstance(raised.value, ExtractError) and raised.value.__cause__ is None
    monkeypatch.delenv("CMTP_TEST_KEY")
    with pytest.raises(GenerationAuthError, match="^no API key: set the environment variable CMTP_TEST_KEY$"):
        chat_querygen(hostile, None).extract(record)


def test_auth_failure_finds_the_message_however_the_runner_wraps_it():
    from cmtp.transforms.query_generators import GenerationAuthError, auth_failure

    line = "http://h/v1/chat/completions: HTTP 401 nope: the endpoint refused the API key"
    in_process = GenerationAuthError(f"{line} [while running 'Extract/ParDo(_Extract)']")
    try:
        raise RuntimeError("bundle failed") from in_process
    except RuntimeError as chained:
        assert auth_failure(in_process) == auth_failure(chained) == line
    worker = RuntimeError(f"Traceback (most recent call last):\n  File ...\ncmtp.transforms.querygen.GenerationAuthError: "
                          f"{line} [while running 'Extract/ParDo(_Extract)']\n")  # multi_processing: the text only
    assert auth_failure(worker) == line
    assert auth_failure(GenerationError("HTTP 500")) is None and auth_failure(ValueError("x")) is None


def querygen_config(tmp_path, endpoint: str, max_retries: int = 0, model: str = "m", mix: str = "{sm: 1}"):
    config = tmp_path / "qg.yaml"
    config.write_text(f"""pipeline: unlabeled
sources:
  - name: querygen
    paths: ["{REPO}/data/sample/csl/csl_sample.tsv"]
    options:
      from_source: csl
      from_kinds: [title_abstract]
      generator: chat
      mix: {mix}
      chat: {{endpoint: "{endpoint}", model: {model}, api_key_env: CMTP_TEST_KEY, cache_dir: "{tmp_path / 'cache'}",
              requests_per_minute: 6000, backoff_seconds: 0.01, max_retries: {max_retries}}}
dedup: {{exact: {{passage: false}}, near: {{enabled: false}}}}
scoring: {{enabled: false}}
""", encoding="utf-8")
    return config


def test_a_run_against_a_hostile_server_keeps_the_key_out_of_every_output(hostile, tmp_path, monkeypatch, capfd):
    """Failed records are `generate` rejects with the status, the run balances, and the key is nowhere."""
    import pyarrow.parquet as pq

    from cmtp.pipelines.cli import main

    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    _Hostile.script = [500, 502]  # the first two passages fail (no retries), the others are answered
    out = tmp_path / "out"
    assert main(["run", str(querygen_config(tmp_path, hostile)), "--out", str(out)]) == 0
    printed = capfd.readouterr()
    assert SECRET not in printed.out + printed.err
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert report["balanced"], report["checks"]
    rejects = [r for r in pq.read_table(out / "rejects").to_pylist() if r["stage"] == "generate"]
    assert sorted(r["detail"].split("HTTP ")[1][:3] for r in rejects) == ["500", "502"]
    assert {r["reason"] for r in rejects} == {"generation_failed"}
    assert report["totals"]["pairs_kept"] > 0
    stored = [p for p in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")] if p.is_file()]
    assert stored and all(SECRET.encode() not in p.read_bytes() for p in stored)


def test_a_run_whose_key_is_refused_stops_at_once_with_exit_3(hostile, tmp_path, monkeypatch, capfd):
    from cmtp.pipelines.cli import main

    monkeypatch.setenv("CMTP_TEST_KEY", SECRET)
    _Hostile.script = [401]
    assert main(["run", str(querygen_config(tmp_path, hostile, max_retries=3)), "--out", str(tmp_path / "out")]) == 3
    err = capfd.readouterr().err
    assert err.strip().splitlines()[-1].startswith("cmtp: error: ") and "HTTP 401" in err
    assert "Traceback" not in err and SECRET not in err and not _Hostile.script
