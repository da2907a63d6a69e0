"""The commands README.md and docs/quickstart.md show work as shown.

Commands are discovered from the docs, never listed here: every line of a ```bash block is a command (a line
ending in `\\` continues on the next) and every ```python block a script. They run in order, one doc at a time,
in a temporary tree that links the checkout's folders (and ../shared beside it), so `runs/...` and any other
output lands in the temporary folder while `configs/`, `data/` and `../shared/data` read as in the docs.

- Set-up steps cannot be rerun here: `python3 -m venv`, activating it, and `pip install` of this package are
  skipped, but an install may name only extras setup.py defines, and the install that precedes the test suite
  must name all of them (the suite needs every extra).
- A pytest command is collected (`--collect-only`), not run: running the suite from inside itself would recurse.
- A command exits 0 unless a comment says otherwise: `# exit: 2`. A command that needs what this machine cannot
  have says so in a comment, `# needs: network`, and is skipped with that reason. A marker goes at the end of
  the command's line or alone on the line above it (a command continued with `\\` can only take it above).
- A ```output block shows (part of) the output of the last command of the bash block before it: each of its
  non-blank lines must appear, in order, among the lines the command printed.
"""
from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
DOCS = ("README.md", "docs/quickstart.md")
MARKER = re.compile(r"^(needs|exit):\s*(.+)$")


@dataclass
class Command:
    doc: str
    line: int  # 1-based line of the doc where it starts
    text: str  # bash, comments removed; or a python script
    language: str  # "bash" | "python"
    needs: Optional[str] = None
    exit_code: int = 0
    output: list[str] = field(default_factory=list)  # lines the doc shows it printing

    @property
    def name(self) -> str:
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        return f"{self.doc}:{self.line}: {first[:70]}"


def _fences(text: str) -> list[tuple[str, int, list[str]]]:
    """(info string, line of its first content line, its lines) of each fenced block."""
    blocks, info, start, lines = [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if info is None:
                info, start, lines = line[3:].strip(), number + 1, []
            else:
                blocks.append((info, start, lines))
                info = None
        elif info is not None:
            lines.append(line)
    assert info is None, f"a fence opened at line {start - 1} is never closed"
    return blocks


def _split_comment(line: str) -> tuple[str, str]:
    """(the code, the comment) of a bash line: a `#` starting a word outside quotes opens the comment."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def _apply_marker(command: Command, comment: str) -> None:
    found = MARKER.match(comment)
    if found and found.group(1) == "needs":
        command.needs = found.group(2)
    elif found:
        command.exit_code = int(found.group(2))


def _bash_commands(doc: str, start: int, lines: list[str]) -> list[Command]:
    commands, markers = [], []
    i = 0
    while i < len(lines):
        number = start + i
        code, comment = _split_comment(lines[i])
        if not code.strip():
            if MARKER.match(comment):
                markers.append(comment)
            i += 1
            continue
        parts = [code]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            more, _ = _split_comment(lines[i])
            parts[-1] = parts[-1][:-1].rstrip()
            parts.append(more.strip())
        command = Command(doc, number, " ".join(parts), "bash")
        for marker in markers + [comment]:
            _apply_marker(command, marker)
        commands.append(command)
        markers = []
        i += 1
    return commands


def doc_commands(doc: str) -> list[Command]:
    """The commands and scripts of one doc, in order, with the output each is shown printing."""
    commands: list[Command] = []
    for info, start, lines in _fences((REPO / doc).read_text("utf-8")):
        language = info.split()[0] if info else ""
        if language in ("bash", "sh", "shell"):
            commands += _bash_commands(doc, start, lines)
        elif language == "python":
            commands.append(Command(doc, start, "\n".join(lines), "python"))
        elif language == "output":
            assert commands and commands[-1].language == "bash", f"{doc}:{start}: an output block with no command"
            commands[-1].output += [line.rstrip() for line in lines if line.strip()]
    return commands


def setup_extras() -> set[str]:
    """The extras setup.py defines, read from its source (an installed copy's metadata may be older)."""
    tree = ast.parse((REPO / "setup.py").read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "extras_require":
            return set(ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no extras_require")


def _is_setup_step(words: list[str]) -> bool:
    return (words[:3] in (["python3", "-m", "venv"], ["python", "-m", "venv"])
            or (len(words) == 2 and words[0] in (".", "source") and words[1].endswith("activate")))


def _install_target(words: list[str]) -> Optional[list[str]]:
    """The arguments of `pip install ...` / `python -m pip install ...`; None for another command."""
    for prefix in (["pip", "install"], ["pip3", "install"], ["python", "-m", "pip", "install"],
                   ["python3", "-m", "pip", "install"]):
        if words[:len(prefix)] == prefix:
            return words[len(prefix):]
    return None


def _extras_of(target: list[str], where: str) -> set[str]:
    packages = [word for word in target if not word.startswith("-")]
    assert len(packages) == 1 and re.fullmatch(r"\.(\[[\w,-]*\])?", packages[0]), (
        f"{where}: installs {packages}; the docs install this package (`.` or `.[extras]`) only")
    found = re.fullmatch(r"\.\[([\w,-]*)\]", packages[0])
    return set(found.group(1).split(",")) if found else set()


def runnable(command: Command) -> str:
    """The part of a bash command the test runs: set-up steps checked and left out, pytest only collecting."""
    steps = [step.strip() for step in command.text.split("&&")]
    kept, installed = [], None
    for step in steps:
        words = shlex.split(step)
        target = _install_target(words)
        if target is not None:
            installed = _extras_of(target, command.name)
            unknown = installed - setup_extras()
            assert not unknown, f"{command.name}: extras {sorted(unknown)} are not in setup.py's {sorted(setup_extras())}"
            continue
        if _is_setup_step(words):
            continue
        if "pytest" in words:
            if installed is not None:
                assert installed == setup_extras(), (
                    f"{command.name}: the install before the tests names {sorted(installed)}; the tests need every "
                    f"extra setup.py defines: {sorted(setup_extras())}")
            step += " --collect-only -p no:cacheprovider"
        kept.append(step)
    return " && ".join(kept)


class DocTree:
    """One doc's commands run in order, each once, in a temporary tree linking the checkout's folders."""

    def __init__(self, root: Path, commands: list[Command]):
        self.tree = root / REPO.name
        self.tree.mkdir(parents=True)
        for entry in REPO.iterdir():
            if not entry.name.startswith(".") and entry.name != "runs":
                (self.tree / entry.name).symlink_to(entry)
        if SHARED.is_dir():
            (root / "shared").symlink_to(SHARED)
        self.commands, self.results = commands, {}
        self.env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}

    def result(self, index: int) -> subprocess.CompletedProcess:
        """The result of command `index`, after running every earlier command of the doc that has not run."""
        for i in range(index + 1):
            if i not in self.results:
                self.results[i] = self._run(self.commands[i])
        return self.results[index]

    def _run(self, command: Command) -> Optional[subprocess.CompletedProcess]:
        if command.needs:
            return None
        if command.language == "python":
            argv = [sys.executable, "-c", command.text]
        else:
            code = runnable(command)
            if not code:
                return subprocess.CompletedProcess(code, 0, "", "")
            argv = ["bash", "-c", "set -o pipefail; " + code]
        return subprocess.run(argv, cwd=self.tree, env=self.env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trees():
    """One DocTree per doc, made when its first command is asked for."""
    made: dict[str, DocTree] = {}
    with tempfile.TemporaryDirectory(prefix="cmtp-docs-") as root:
        def tree(doc: str) -> DocTree:
            if doc not in made:
                made[doc] = DocTree(Path(root) / doc.replace("/", "_"), doc_commands(doc))
            return made[doc]

        yield tree


CASES = [(doc, i, command.name) for doc in DOCS for i, command in enumerate(doc_commands(doc))]


@pytest.mark.parametrize(("doc", "index", "name"), CASES, ids=[name for _, _, name in CASES])
def test_a_doc_command_exits_as_the_doc_says_and_prints_what_it_shows(trees, doc, index, name):
    tree = trees(doc)
    command = tree.commands[index]
    if command.needs:
        pytest.skip(f"the doc says it needs: {command.needs}")
    if "../shared/" in command.text and not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is missing: CI must have ../shared beside the checkout")
        pytest.skip(f"{SHARED} not present")
    result = tree.result(index)
    printed = result.stdout + result.stderr
    assert result.returncode == command.exit_code, (
        f"{name}: exit {result.returncode}, the doc says {command.exit_code}\n{printed[-3000:]}")
    lines, at = [line.rstrip() for line in printed.splitlines()], 0
    for shown in command.output:
        found = next((j for j in range(at, len(lines)) if lines[j] == shown), None)
        assert found is not None, f"{name}: the doc shows {shown!r}, which it did not print (in order)\n{printed[-3000:]}"
        at = found + 1


def test_the_docs_show_commands_at_all():
    """Discovery itself can fail: both docs hold runs of the sample, and the quickstart shows output."""
    for doc in DOCS:
        assert any(c.text.startswith("cmtp run configs/sample") or " cmtp run configs/sample" in c.text
                   for c in doc_commands(doc)), doc
    assert any(c.output for c in doc_commands("docs/quickstart.md"))


def _listed(row: str) -> list[list[str]]:
    return [names.split(", ") for names in re.findall(r"`([a-z_]+(?:, [a-z_]+)+)`", row)]


def test_the_readme_lists_every_column_a_run_writes_and_no_other():
    from cmtp.schemas import LABELED_SCHEMA, PAIR_SCHEMA, REJECT_SCHEMA

    rows = {re.match(r"\| `(\w+)/", line).group(1): line for line in (REPO / "README.md").read_text("utf-8").splitlines()
            if re.match(r"\| `(data|rejects)/part-", line)}
    assert _listed(rows["data"]) == [PAIR_SCHEMA.names, LABELED_SCHEMA.names]
    assert _listed(rows["rejects"]) == [REJECT_SCHEMA.names]
