"""Finding headed sections in a body of text: (heading, passage) pairs for the sub-title kinds."""
from __future__ import annotations

import re
from typing import Callable, Iterable, Optional

_ENUMERATOR = re.compile(
    r"^(?:第[一二三四五六七八九十百零〇\d]+[章节部分篇][、:：.．\s]*"  # 第一章 / 第二节
    r"|[一二三四五六七八九十]+[、.．]\s*"  # 一、 / 二.
    r"|[（(][一二三四五六七八九十\d]+[）)]\s*"  # （一） / (2)
    r"|\d{1,2}[、.．](?!\d)\s*"  # 1、 / 2.  (not 3.5)
    r"|#{1,6}\s+)"  # markdown
)
_SENTENCE_END = re.compile(r"[。！？；!?;]")


def numbered_heading(line: str, max_chars: int = 40) -> Optional[str]:
    """The heading text of an enumerated heading line ("一、发展历程" -> "发展历程"), else None."""
    line = line.strip()
    match = _ENUMERATOR.match(line)
    if not match or len(line) > max_chars:
        return None
    heading = line[match.end():].strip(" :：")
    if not heading or _SENTENCE_END.search(heading):
        return None
    return heading


def wiki_heading(block: str, max_chars: int = 30) -> Optional[str]:
    """A section heading as WikiExtractor writes it in wiki2019zh: a short paragraph ending with an ASCII period."""
    block = block.strip()
    if len(block) > max_chars or not block.endswith(".") or _SENTENCE_END.search(block) or "，" in block:
        return None
    return block.rstrip(".").strip() or None


def sections(blocks: Iterable[str], heading: Callable[[str], Optional[str]]) -> list[tuple[str, str]]:
    """(heading, the blocks up to the next heading joined by newlines), for each heading with a body."""
    found: list[tuple[str, str]] = []
    current: Optional[str] = None
    body: list[str] = []

    def flush() -> None:
        if current and body:
            found.append((current, "\n".join(body)))

    for block in blocks:
        block = block.strip()
        if not block:
            continue
        title = heading(block)
        if title:
            flush()
            current, body = title, []
        elif current:
            body.append(block)
    flush()
    return found
