"""The example outputs in docs/ are what their commands print on the demo today.

A block that differs fails here; `make doc-examples` rewrites them all (see tools/doc_examples.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT
from tools.doc_examples import Example, comparable, examples, pages, run

EXAMPLES = [example for page in pages() for example in examples(page)]


def test_the_pages_that_show_demo_output_have_examples():
    shown = {str(page.relative_to(ROOT)) for page in pages()}
    assert {
        "docs/commands/show.md",
        "docs/commands/verify.md",
        "docs/commands/diff.md",
        "docs/commands/export.md",
        "docs/lineage-server.md",
    } <= shown


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.where)
def test_a_block_is_what_its_command_prints(example: Example, demo: Path):
    now = run(example.command, demo)
    assert str(demo) not in now
    assert comparable(now) == comparable(example.body), (
        f"{example.where} no longer matches `{example.command}`: run `make doc-examples`"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.where)
def test_a_block_names_no_real_folder(example: Example):
    assert str(ROOT) not in example.body
    assert "/tmp/" not in example.body


class TestComparable:
    """What may differ between a block and a demo elsewhere or from another commit, and what
    may not."""

    def test_digests_sizes_and_the_tree_state_may_differ(self):
        written = (
            "model  runs/demo/m.npz  (2.1 KiB, blake3 e71f5022e75d…)\n  git 4166e06eceac…  (clean)"
        )
        now = (
            "model  runs/demo/m.npz  (2.2 KiB, blake3 0123456789ab…)\n"
            "  git 0123456789ab…  (dirty: diff blake3 9f8e7d6c5b4a…)"
        )
        assert comparable(written) == comparable(now)

    def test_counts_words_and_metrics_may_not(self):
        base = "  unchanged code   48 files\n    gate mos_head: pass  (mean_plcc=0.988204)"
        assert comparable(base) != comparable(base.replace("48 files", "26 file(s)"))
        assert comparable(base) != comparable(base.replace("0.988204", "0.989181"))
        assert comparable(base) != comparable(base.replace("pass", "FAIL"))


def test_a_changed_block_is_caught(demo: Path, tmp_path: Path):
    """A page whose block was written by older code is found out."""
    page = tmp_path / "page.md"
    command = "provenance verify runs/demo/models/konvid_mos_head.onnx"
    stale = run(command, demo).replace("unchanged output onnx", "changed   output onnx")
    page.write_text(f"<!-- example: {command} -->\n```\n{stale}```\n<!-- /example -->\n")
    (example,) = examples(page)
    assert comparable(run(example.command, demo)) != comparable(example.body)
