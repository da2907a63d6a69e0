"""Query generation at two granularities (the CapRetrieval paper): SM, summaries and long questions about a
passage, and KW, its salient keywords, hypernyms and short phrases. Mixing the two matters.

Two generators share one interface, `generate(passage, granularity, n) -> [query, ...]`:

- `OfflineGenerator` (the default; no network): KW from jieba's TF-IDF and TextRank keywords, plus two-word
  phrases that occur in the passage; SM from the passage's lead sentence, or its first clauses when that
  sentence is long. Deterministic.
- `ChatGenerator`: any OpenAI-compatible chat-completions endpoint. Prompts per granularity and language
  live in configs/prompts/ (`{passage}`, `{n}`). Requests are paced (`requests_per_minute`), retried with
  exponential backoff on 429 and 5xx (honouring Retry-After), and answers are cached on disk by a hash of
  (endpoint, model, prompt, passage, n), so a re-run costs nothing. The API key is read from the
  environment variable the config names, sent only in the Authorization header, and never stored: not in
  the cache, the resolved config, the rows or the report. A server that echoes the key gets it replaced by
  `***` in everything it sent (answers, error reasons) before that is cached, parsed or reported.

Failures: `GenerationError` when the endpoint fails for good (after retries, or a 4xx other than 401/403), with
the HTTP `status` where there was one; `GenerationAuthError`, its subclass, for a missing key or a 401/403,
which no other passage would escape, so the querygen source lets it stop the run.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Protocol

from cmtp.configs import PROMPTS

GRANULARITIES = ("sm", "kw")
_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|(?<=\.)\s")
_CLAUSE = re.compile(r"[，,：:]")
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)、．]|[（(]\d+[)）])\s*")


class Generator(Protocol):
    name: str

    def generate(self, passage: str, granularity: str, n: int) -> list[str]: ...


class OfflineGenerator:
    """KW by keyword extraction, SM by the lead sentence; segments with jieba."""

    name = "offline"

    def __init__(self, max_sm_chars: int = 64):
        import logging

        import jieba
        import jieba.analyse

        jieba.setLogLevel(logging.WARNING)
        self._jieba, self._analyse, self._max_sm = jieba, jieba.analyse, max_sm_chars

    def generate(self, passage: str, granularity: str, n: int) -> list[str]:
        return self._keywords(passage, n) if granularity == "kw" else self._summaries(passage, n)

    def _keywords(self, passage: str, n: int) -> list[str]:
        tfidf = self._analyse.extract_tags(passage, topK=max(n, 5))
        textrank = self._analyse.textrank(passage, topK=max(n, 5), allowPOS=("ns", "n", "nr", "nz", "vn", "v"))
        words = [w for w in self._jieba.lcut(passage) if w.strip()]
        wanted = set(tfidf) | set(textrank)
        phrases = [a + b for a, b in zip(words, words[1:]) if a in wanted and b in wanted and (a + b) in passage]
        out: list[str] = []
        for candidate in [*phrases[:1], *tfidf, *textrank, *phrases[1:]]:  # one phrase first: KW are short phrases too
            if len(candidate) >= 2 and candidate not in out:
                out.append(candidate)
        return out[:n]

    def _summaries(self, passage: str, n: int) -> list[str]:
        sentences = [s.strip() for s in _SENTENCE_END.split(passage.strip()) if s and s.strip()]
        out: list[str] = []
        for sentence in sentences:
            if len(sentence) > self._max_sm:  # a long lead sentence: its first clauses, up to the limit
                ends = [m.start() for m in _CLAUSE.finditer(sentence) if m.start() <= self._max_sm]
                sentence = sentence[:ends[-1] if ends else self._max_sm]  # a span of the passage, as written
            sentence = sentence.rstrip("。！？!?；;.，, ")
            if len(sentence) >= 4 and sentence not in out:
                out.append(sentence)
            if len(out) == n:
                break
        return out


class GenerationError(RuntimeError):
    """The endpoint refused or failed for good (after retries); one line that never contains the key."""

    def __init__(self, message: str, status: Optional[int] = None):
        super().__init__(" ".join(message.split()))
        self.status = status  # the HTTP status, None for a network failure or a malformed answer


class GenerationAuthError(GenerationError):
    """No key, or the endpoint refused it (401/403): every request would fail the same way, so the run stops."""


_RUNNER_SUFFIX = re.compile(r" \[while running '[^']*'\]$")  # what Beam appends to a DoFn's exception
_QUOTED_AUTH = re.compile(r"^(?:[\w.]+\.)?GenerationAuthError: (.*)$", re.MULTILINE)  # any module path


def auth_failure(error: BaseException) -> Optional[str]:
    """The one-line message of the GenerationAuthError that `error` is or chains to, or that it quotes (a runner
    that re-raises a worker's failure as a RuntimeError holding its traceback text); None for any other error."""
    seen: set[int] = set()
    cause: Optional[BaseException] = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, GenerationAuthError):
            return _RUNNER_SUFFIX.sub("", str(cause))
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    quoted = _QUOTED_AUTH.findall(str(error))
    return _RUNNER_SUFFIX.sub("", quoted[-1]) if quoted else None


def scrub(text: str, secret: Optional[str]) -> str:
    """Text from the server with the key replaced by `***`, so a server that echoes it cannot get it stored."""
    return text.replace(secret, "***") if secret else text


class ChatGenerator:
    """An OpenAI-compatible chat-completions client with pacing, retries and an on-disk response cache."""

    def __init__(self, endpoint: str, model: str, api_key_env: str = "OPENAI_API_KEY", language: str = "zh",
                 cache_dir: Optional[str] = None, requests_per_minute: float = 60.0, max_retries: int = 5,
                 backoff_seconds: float = 1.0, timeout_seconds: float = 60.0, temperature: float = 0.7):
        self.name = f"chat:{model}"
        self._url = endpoint.rstrip("/") + ("" if endpoint.rstrip("/").endswith("/chat/completions")
                                            else "/chat/completions")
        self._model, self._key_env, self._language = model, api_key_env, language
        self._cache = Path(cache_dir) if cache_dir else None
        self._interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._retries, self._backoff, self._timeout = max_retries, backoff_seconds, timeout_seconds
        self._temperature = temperature
        self._lock, self._next = threading.Lock(), 0.0
        self._prompts = {g: (PROMPTS / f"{g}.{language}.txt").read_text("utf-8") for g in GRANULARITIES}
        self.requests = 0  # HTTP requests sent (cache hits send none)

    def generate(self, passage: str, granularity: str, n: int) -> list[str]:
        prompt = self._prompts[granularity].format(passage=passage, n=n)
        key = hashlib.sha256(json.dumps([self._url, self._model, prompt, n, self._temperature],
                                        ensure_ascii=False).encode("utf-8")).hexdigest()
        cached = self._cache / f"{key}.json" if self._cache else None
        if cached is not None and cached.is_file():
            text = scrub(json.loads(cached.read_text("utf-8"))["text"], os.environ.get(self._key_env))
        else:
            text = self._complete(prompt)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp")
                tmp.write_text(json.dumps({"model": self._model, "granularity": granularity, "text": text},
                                          ensure_ascii=False), "utf-8")
                tmp.replace(cached)  # atomic: a reader never sees half a file
        return parse_queries(text, n)

    def _pace(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait, self._next = max(0.0, self._next - now), max(now, self._next) + self._interval
        if wait:
            time.sleep(wait)

    def _complete(self, prompt: str) -> str:
        key = os.environ.get(self._key_env)
        if not key:
            raise GenerationAuthError(f"no API key: set the environment variable {self._key_env}")
        body = json.dumps({"model": self._model, "temperature": self._temperature,
                           "messages": [{"role": "user", "content": prompt}]}).encode("utf-8")
        for attempt in range(self._retries + 1):
            self._pace()
            request = urllib.request.Request(self._url, data=body, method="POST", headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
            self.requests += 1
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return scrub(_content(payload), key)
            except urllib.error.HTTPError as error:
                _refused(error, self._url, key, attempt + 1 if attempt == self._retries else None)
                delay = _retry_after(error) or self._backoff * 2 ** attempt
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
                if attempt == self._retries:
                    raise GenerationError(scrub(f"{self._url}: {getattr(error, 'reason', error)} after "
                                                f"{attempt + 1} attempts", key)) from None
                delay = self._backoff * 2 ** attempt
            except (KeyError, IndexError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise GenerationError(scrub(f"{self._url}: not a chat-completions answer "
                                            f"({type(error).__name__}: {error})", key)) from None
            time.sleep(delay)
        raise AssertionError("unreachable")


def _content(payload: object) -> str:
    """The answer's text; TypeError/KeyError/IndexError when the payload is not a chat-completions answer."""
    content = payload["choices"][0]["message"]["content"]  # type: ignore[index]
    if not isinstance(content, str):
        raise TypeError(f"content is {type(content).__name__}, not text")
    return content


def _refused(error: urllib.error.HTTPError, url: str, key: str, attempts: Optional[int]) -> None:
    """Raise for an HTTP error that is final: 401/403 (GenerationAuthError), another 4xx, or a 429/5xx after the
    last of `attempts` (None: attempts are left); return for one worth retrying. The server's reason phrase is
    scrubbed of the key."""
    message = scrub(f"{url}: HTTP {error.code} {error.reason}", key)
    if error.code in (401, 403):
        raise GenerationAuthError(f"{message}: the endpoint refused the API key", error.code) from None
    if not (error.code == 429 or error.code >= 500):
        raise GenerationError(message, error.code) from None
    if attempts is not None:
        raise GenerationError(f"{message} after {attempts} attempts", error.code) from None


def _retry_after(error: urllib.error.HTTPError) -> Optional[float]:
    try:
        return float(error.headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def parse_queries(text: str, n: int) -> list[str]:
    """An answer's queries: one a line, numbering and bullets removed, empty and repeated ones dropped."""
    out: list[str] = []
    for line in text.splitlines():
        query = _NUMBERING.sub("", line).strip().strip('"“”')
        if query and query not in out:
            out.append(query)
    return out[:n]


def load_generator(kind: str, settings: dict) -> Generator:
    if kind == "offline":
        return OfflineGenerator(**settings)
    return ChatGenerator(**settings)
