"""Keep the example outputs in docs/ what the commands print on the demo.

An example is a fenced block between two comments in a page::

    <!-- example: provenance show runs/demo/models/konvid_mos_head.onnx -->
    ```
    (what the command prints)
    ```
    <!-- /example -->

The comment holds the command as a user types it in the project's folder after ``make demo``,
ending in a pipeline (``| head -n 20``) where the page shows part of what it prints.
``python -m tools.doc_examples --update`` (``make doc-examples``) runs each such command on the
demo in ``runs/demo`` (``--demo DIR`` names another) and writes what it printed into the block,
with ``exit N`` after it when it exits N != 0; ``--check`` exits 1 naming each block that
differs. tests/test_doc_examples.py makes the same check on the suite's own demo, so output
that changed and was not carried into the docs fails ``make test``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DEMO = "runs/demo"
# How the pages write the project's folder, wherever the reader's checkout is.
PROJECT = "/path/to/project"

_BLOCK = re.compile(
    r"(?P<open><!-- example: (?P<command>.+?) -->\n"
    r"(?P<fence>```[a-z]*)\n)(?P<body>.*?)(?P<close>```\n<!-- /example -->)",
    re.DOTALL,
)
_DEMO_WORD = re.compile(r"(?<![\w/.-])runs/demo(?=/|\s|$)")


@dataclass(frozen=True)
class Example:
    page: Path
    command: str
    body: str
    start: int
    end: int

    @property
    def where(self) -> str:
        line = self.page.read_text("utf-8").count("\n", 0, self.start) + 1
        return f"{self.page.relative_to(ROOT)}:{line}"


def examples(page: Path) -> Iterator[Example]:
    """The marked blocks of one page, in order."""
    text = page.read_text("utf-8")
    for match in _BLOCK.finditer(text):
        yield Example(page, match["command"], match["body"], match.start("body"), match.end("body"))


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "<!-- example:" in p.read_text("utf-8"))


def run(command: str, demo: Path) -> str:
    """What ``command`` prints on the demo in ``demo``, as the page shows it.

    The command runs in bash from the project's folder, as a user types it there, with
    ``provenance`` and ``python`` being this checkout's; it may end in a pipeline."""
    if not command.startswith("provenance "):
        raise SystemExit(f"doc_examples: an example is a provenance command: {command!r}")
    line = command
    if demo.resolve() != (ROOT / DEMO).resolve():
        line = _DEMO_WORD.sub(lambda _: shlex.quote(str(demo)), line)
    if not demo.resolve().is_relative_to(ROOT):
        # The demo's files are then outside the project whose scripts made them: said outright.
        line = re.sub(r"^provenance (verify|lineage) ", r"provenance \1 --outside-root ", line)
    script = (
        'provenance() { "$PYTHON" -m provenance "$@"; }\n'
        'python() { "$PYTHON" "$@"; }\n'
        f"{line}\n"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env=dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT), NO_COLOR="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1) or not done.stdout:
        raise SystemExit(f"doc_examples: {command!r} exited {done.returncode}: {done.stderr}")
    text = done.stdout if done.stdout.endswith("\n") else done.stdout + "\n"
    if done.returncode:
        text += f"exit {done.returncode}\n"
    return normalized(text, demo)


def normalized(text: str, demo: Path) -> str:
    """Output as the pages show it: the demo as runs/demo, the project as /path/to/project."""
    if demo.resolve() != (ROOT / DEMO).resolve():
        for form in {str(demo), str(demo.resolve())}:
            text = text.replace(form, DEMO)
    return text.replace(str(ROOT), PROJECT)


# What a run writes depends on the folder it was told to write to and on the commit it ran
# from (the argv and the revision in a record, so the size and digests of every file that
# embeds one, and the digest of every script that changed). These are left out of the
# comparison; every other word and number must agree.
_VARIES = (
    (re.compile(re.escape(PROJECT + "/" + DEMO)), DEMO),
    (re.compile(r"\((?:clean|dirty: diff blake3 [0-9a-f]+…?)\)"), "(<state>)"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b[0-9a-f]{12,}…?"), "<digest>"),
    (re.compile(r"\b\d+(?:\.\d+)? (?:B|KiB|MiB|GiB)\b"), "<size>"),
    (re.compile(r'("size_bytes": )\d+'), r"\1<size>"),
    (re.compile(r"\(size \d+ now \d+\)"), "(size <size> now <size>)"),
)


def comparable(text: str) -> str:
    """The text without what depends on where the demo is and which commit made it."""
    for pattern, replacement in _VARIES:
        text = pattern.sub(replacement, text)
    return text


def update(page: Path, demo: Path) -> int:
    """Rewrite the page's blocks from the demo; the number of blocks changed."""
    text = page.read_text("utf-8")
    changed = 0
    for example in reversed(list(examples(page))):
        now = run(example.command, demo)
        if now != example.body:
            text = text[: example.start] + now + text[example.end :]
            changed += 1
    if changed:
        temporary = page.with_name(f".{page.name}.tmp")
        temporary.write_text(text, "utf-8")
        os.replace(temporary, page)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.doc_examples", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--update", action="store_true", help="rewrite the blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a block differs")
    parser.add_argument(
        "--demo", type=Path, default=ROOT / DEMO, help="the demo's folder (default: runs/demo)"
    )
    args = parser.parse_args(argv)
    if not (args.demo / "sample.manifest.json").is_file():
        parser.error(f"no demo in {args.demo}: run `make demo` first")
    status = 0
    for page in pages():
        if args.update:
            changed = update(page, args.demo)
            blocks = "block" if changed == 1 else "blocks"
            print(f"{page.relative_to(ROOT)}: {changed} {blocks} rewritten")
            continue
        for example in examples(page):
            if comparable(run(example.command, args.demo)) != comparable(example.body):
                print(f"{example.where}: differs from `{example.command}`")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
