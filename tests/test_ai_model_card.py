"""Model cards: the evidence on the card is what the records say, and what is wrong is shown."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from ai.demo import steps
from ai.release.model_card import code
from tests.conftest import load_sidecar, run_script, sidecar_of

CARD = "cards/konvid_mos_head.md"
# The MOS head's chain, from the sample to its card: the part of the demo the card needs.
CHAIN = (
    "sample",
    "corpora/mos_aggregated.jsonl",
    "tables/k150k.parquet",
    "tables/k150k_enriched.parquet",
    "models/konvid_seed0.npz",
    "models/konvid_mos_head.onnx",
    "reports/konvid_validation.json",
    CARD,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's steps that lead to the MOS head's card, run once into a module folder."""
    folder = tmp_path_factory.mktemp("card") / "run"
    wanted = {f"{folder}/{artifact}" for artifact in CHAIN}
    chosen = [step for step in steps(str(folder)) if step.artifact in wanted]
    assert [s.artifact for s in chosen] == [f"{folder}/{a}" for a in CHAIN]
    for step in chosen:
        proc = run_script(step.script, *shlex.split(step.command))
        assert proc.returncode == 0, proc.stderr
    return folder


def render(out: Path, card: Path, *extra: object):
    return run_script("render_model_card", "--model", out / "models/konvid_mos_head.onnx",
                      "--evidence", out / "reports/konvid_validation.json", "--root", out,
                      "--out", card, *extra)  # fmt: skip


@contextmanager
def restored(folder: Path) -> Iterator[None]:
    """Whatever a test changes under ``folder`` is put back as it was, for the next test."""
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    try:
        yield
    finally:
        for path in [p for p in folder.rglob("*") if p.is_file() and p not in before]:
            path.unlink()
        for path, data in before.items():
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)


@contextmanager
def absent(path: Path) -> Iterator[None]:
    """``path`` moved away for the block, as a local corpus is absent where the card is made."""
    away = path.with_name(path.name + ".away")
    path.rename(away)
    try:
        yield
    finally:
        away.rename(path)


def section(card: str, title: str) -> str:
    return card.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]


def chain_records(out: Path) -> list[Path]:
    """The records behind the card, found by following each input's path to the sidecar
    beside it (or beside the sample folder it is in)."""
    found: list[Path] = []
    todo = [sidecar_of(out / "models/konvid_mos_head.onnx"),
            sidecar_of(out / "reports/konvid_validation.json")]  # fmt: skip
    while todo:
        record = todo.pop(0)
        if record in found:
            continue
        found.append(record)
        for entry in _entries(load_sidecar(record)["run_provenance"]["inputs"]):
            path = Path(entry["path"])
            beside = sidecar_of(path)
            if beside.exists():
                todo.append(beside)
            elif (out / "sample") in path.parents:
                todo.append(sidecar_of(out / "sample"))
    return found


def _entries(table: dict) -> list[dict]:
    return [e for v in table.values() for e in (v if isinstance(v, list) else [v]) if e]


def test_the_card_shows_every_record_gate_and_digest_of_the_chain(out):
    card = (out / CARD).read_text("utf-8")
    assert "**Evidence: complete.**" in card
    assert "EVIDENCE INCOMPLETE" not in card
    runs, artifacts = section(card, "Runs and gates"), section(card, "Artifacts")
    records = chain_records(out)
    assert len(records) == 7  # export, trainer, enrich, extract, aggregate, sample, validation
    assert len([x for x in runs.splitlines() if x.startswith("| `ai/")]) == len(records)
    for record in records:
        relative = record.relative_to(out).as_posix()
        row = next(line for line in runs.splitlines() if f"| `{relative}` |" in line)
        assert f"`{sha256(record)}`" in row
        block = load_sidecar(record)["run_provenance"]
        assert f"| `{block['entrypoint']['path']}` |" in row
        for gate, values in block["outcome"]["gates"].items():
            assert f"`{gate}` pass" in row
            for key, value in values.items():
                if key != "passed":
                    assert f"`{key}` {json.dumps(value)}" in row
        for entry in _entries(block["inputs"]):
            path = Path(entry["path"])
            line = next(x for x in artifacts.splitlines() if f"| `{path.relative_to(out)}` |" in x)
            if path.is_file():
                assert f"sha256 `{sha256(path)}`" in line
            assert line.endswith("| unchanged |")
    onnx = out / "models/konvid_mos_head.onnx"
    assert f"| sha256 (recorded) | `{sha256(onnx)}` |" in card
    assert f"| `models/konvid_mos_head.onnx` | `file` | sha256 `{sha256(onnx)}` |" in artifacts


def test_the_card_leads_from_the_model_back_to_the_sample_corpus(out):
    card = (out / CARD).read_text("utf-8")
    lineage = section(card, "Lineage").split("\nChecked by")[0]
    chain = [line for line in lineage.splitlines() if line.lstrip().startswith("- ")]
    expected = [
        (0, "`konvid_mos_head.onnx`", "export_mos_head_onnx"),
        (1, "`checkpoint` `models/konvid_seed0.npz`", "train_konvid_mos_head"),
        (2, "`table` `tables/k150k_enriched.parquet`", "enrich_k150k_parquet_metadata"),
        (4, "`scores` `corpora/mos_aggregated.jsonl`", "aggregate_corpora"),
        (5, "`corpora[1]` `sample/mos/konvid-150k.jsonl`", "generate_sample_data"),
    ]
    for depth, head, script in expected:
        line = next(x for x in chain if head in x)
        assert line.startswith("  " * depth + "- ")
        assert f"`ai/scripts/{script}.py`" in line
    shard = next(x for x in chain if "konvid-150k.jsonl" in x)
    assert shard.endswith(", part of `sample`")
    sample = load_sidecar(sidecar_of(out / "sample"))["run_provenance"]["outputs"]["sample"]
    corpus = section(card, "Corpus")
    assert f"- `sample`, blake3 `{sample['blake3']}` (tree of {sample['file_count']} files)" in (
        corpus
    )
    assert "written by `ai/scripts/generate_sample_data.py`" in corpus


def test_the_card_is_recorded_and_the_same_bytes_twice_with_no_machine_path(out, tmp_path):
    card = out / CARD
    record = load_sidecar(sidecar_of(card))
    block = record["run_provenance"]
    assert block["outputs"]["card"]["sha256"] == sha256(card)
    assert block["inputs"]["model"]["sha256"] == sha256(out / "models/konvid_mos_head.onnx")
    assert block["outcome"]["gates"]["evidence_complete"] == {
        "passed": True,
        "problems": 0,
        "local_only": 0,
    }
    assert record["local_only"] == []
    assert {r["path"]: r["sha256"] for r in record["records_read"]} == {
        p.relative_to(out).as_posix(): sha256(p) for p in chain_records(out)
    }
    again = tmp_path / "again.md"
    proc = render(out, again)
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == card.read_bytes()
    text = card.read_text("utf-8")
    assert str(out) not in text
    assert str(tmp_path) not in text
    assert "/tmp" not in text
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", text)  # no time


def failing(out: Path, card: Path) -> str:
    proc = render(out, card)
    assert proc.returncode == 1, proc.stderr
    assert "problem(s), listed at the top of the card" in proc.stderr
    text = card.read_text("utf-8")
    top = text.split("\n## Model\n")[0]
    assert top.startswith("# Model card: `konvid_mos_head`\n\n> **⚠ EVIDENCE INCOMPLETE OR FAILED")
    gate = load_sidecar(sidecar_of(card))["run_provenance"]["outcome"]
    assert (gate["status"], gate["gates"]["evidence_complete"]["passed"]) == ("failed", False)
    return top


def test_a_failed_gate_upstream_is_on_the_card(out, tmp_path):
    with restored(out):
        trainer = next(s for s in steps(str(out)) if s.artifact == f"{out}/models/konvid_seed0.npz")
        proc = run_script(trainer.script, *shlex.split(trainer.command), "--min-plcc", "0.9999")
        # The fork's exit code: 0, the gate's verdict in the records; the checkpoint's bytes
        # are the same, so only the gate tells the card the model did not pass.
        assert proc.returncode == 0, proc.stderr
        top = failing(out, tmp_path / "card.md")
        assert "The gate `mos_head` of `ai/scripts/train_konvid_mos_head.py` (record " in top
        assert "did not succeed" not in top  # the run itself succeeded
        runs = section((tmp_path / "card.md").read_text("utf-8"), "Runs and gates")
        row = next(x for x in runs.splitlines() if "`models/konvid_seed0.npz.manifest.json`" in x)
        assert "| `succeeded` |" in row
        assert "`mos_head` **FAIL**: " in row
        assert "`min_plcc` 0.9999" in row
        with absent(out / "sample"):  # a failed gate fails the card with the corpus absent too
            top = failing(out, tmp_path / "card2.md")
        assert "The gate `mos_head` of `ai/scripts/train_konvid_mos_head.py` (record " in top
        assert "sample" not in top


def test_a_deleted_upstream_record_is_on_the_card(out, tmp_path):
    with restored(out):
        sidecar_of(out / "tables/k150k.parquet").unlink()
        top = failing(out, tmp_path / "card.md")
        assert (
            "No record accounts for `tables/k150k.parquet`, the input `table` of "
            "`ai/scripts/enrich_k150k_parquet_metadata.py`: its record is missing"
        ) in top
        lineage = section((tmp_path / "card.md").read_text("utf-8"), "Lineage")
        assert "- `table` `tables/k150k.parquet`: **no record accounts for it**" in lineage


def test_an_unreadable_upstream_record_is_on_the_card_without_the_machine_path(out, tmp_path):
    with restored(out):
        record = sidecar_of(out / "corpora/mos_aggregated.jsonl")
        record.write_text(record.read_text("utf-8")[:-10], "utf-8")  # cut short
        top = failing(out, tmp_path / "card.md")
        assert (
            "A record under the root could not be read: "
            "`corpora/mos_aggregated.jsonl.manifest.json: not JSON:"
        ) in top
        assert "No record accounts for `corpora/mos_aggregated.jsonl`" in top
        assert str(out) not in (tmp_path / "card.md").read_text("utf-8")


def test_a_model_with_no_record_gets_a_card_that_says_so(out, tmp_path):
    with restored(out):
        copy = out / "models/copy.onnx"
        shutil.copy(out / "models/konvid_mos_head.onnx", copy)
        card = tmp_path / "card.md"
        proc = run_script("render_model_card", "--model", copy, "--root", out, "--out", card)
        assert proc.returncode == 1, proc.stderr
        text = card.read_text("utf-8")
    assert text.startswith("# Model card: unidentified model\n\n> **⚠ EVIDENCE INCOMPLETE OR")
    assert "> 1. The model has no record: `copy.onnx.manifest.json` is not beside it." in text


def test_a_tampered_artifact_is_on_the_card(out, tmp_path):
    with restored(out):
        table = out / "tables/k150k_enriched.parquet"
        recorded = sha256(table)
        table.write_bytes(table.read_bytes().replace(b"PAR1", b"PAR2", 1))
        assert sha256(table) != recorded
        top = failing(out, tmp_path / "card.md")
        assert (
            "The artifact `tables/k150k_enriched.parquet` is changed since it was recorded" in top
        )
        artifacts = section((tmp_path / "card.md").read_text("utf-8"), "Artifacts")
        line = next(x for x in artifacts.splitlines() if "`tables/k150k_enriched.parquet`" in x)
        assert f"sha256 `{recorded}`" in line
        assert "| **changed**" in line


HOSTILE = (
    "<img src=x onerror=alert(1)>[click](https://evil.example) www.evil.example\n# owned\n"
    "| cell | break |\u202egnp.exe a` <script>alert(2)</script> ``` `x`\x1b[31m"
)


# What the card's own Markdown makes: anything else in the HTML came from a record.
ALLOWED_TAGS = {"h1", "h2", "h3", "p", "strong", "em", "blockquote", "ol", "ul", "li", "code",
                "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip


def test_hostile_record_fields_cannot_inject_into_the_card(out, tmp_path):
    with restored(out):
        record = sidecar_of(out / "corpora/mos_aggregated.jsonl")
        document = json.loads(record.read_text("utf-8"))
        document["run_provenance"]["outcome"]["gates"][HOSTILE] = {
            "passed": True,
            HOSTILE: HOSTILE + "x" * 100_000,
        }
        document[HOSTILE] = 1
        record.write_text(json.dumps(document), "utf-8")
        card = tmp_path / "card.md"
        proc = render(out, card)
        assert proc.returncode == 0, proc.stderr
        text = card.read_text("utf-8")
    assert len(text) < 40_000  # the huge value is cut
    assert "\u202e" not in text
    assert "\x1b" not in text
    assert "\\u202e" in text
    assert not any(line.startswith("# owned") for line in text.splitlines())
    html = MarkdownIt("gfm-like").render(text)
    assert "<img" not in html
    assert "<script" not in html
    assert "<a " not in html
    assert len(re.findall("<h1>", html)) == 1
    assert set(re.findall(r"</?([a-z0-9]+)", html)) <= ALLOWED_TAGS
    rows = [r for r in html.split("<tr>") if "mos_aggregated.jsonl.manifest.json" in r]
    assert len(rows) == 1
    assert rows[0].count("<td>") == 6
    assert "alert(1)" in rows[0]
    assert "<code>" in rows[0]


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_value_is_one_code_span_and_nothing_else(value):
    html = MarkdownIt("gfm-like").renderInline(code(value))
    if value:
        assert html.startswith("<code>")
        assert html.endswith("</code>")
        assert html.count("<code>") == 1


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("ab|\\` <>*_[]#\n\u202e")), max_size=60))
def test_any_value_keeps_its_table_cell(value):
    html = MarkdownIt("gfm-like").render(
        f"| h | i |\n|---|---|\n| {code(value, cell=True)} | end |\n"
    )
    assert html.count("<td>") == 2
    assert "<td>end</td>" in html


def test_bad_input_is_exit_2_in_one_line_and_writes_no_card(out, tmp_path):
    card = tmp_path / "card.md"
    proc = run_script("render_model_card", "--model", out / "models/none.onnx", "--root", out,
                      "--out", card)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"render_model_card.py: error: {out / 'models/none.onnx'}: no such file"
    ]
    assert not card.exists()
    outside = tmp_path / "model.onnx"
    shutil.copy(out / "models/konvid_mos_head.onnx", outside)
    other = tmp_path / "other.md"
    proc = run_script("render_model_card", "--model", outside, "--root", out, "--out", other)
    assert proc.returncode == 2
    assert "not under --root" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not other.exists()


def test_the_demo_card_of_the_ensemble_lists_each_member_and_the_promotion(demo):
    card = (demo / "cards/fr_regressor_v2_ensemble_v1.md").read_text("utf-8")
    assert "**Evidence: complete.**" in card
    ensemble = demo / "models/ensemble"
    for seed in (0, 1, 2):
        member = ensemble / f"fr_regressor_v2_ensemble_v1_seed{seed}.onnx"
        assert f"| `{member.name}` | `{sha256(member)}` |" in card
    runs = section(card, "Runs and gates")
    verdict = load_sidecar(demo / "reports/gate/verdict.manifest.json")
    assert f"`mean_plcc` {verdict['mean_plcc']}" in runs
    assert "`promote_verdict` pass: `verdict` `PROMOTE`" in runs
    assert "`ensemble_seeds` pass" in runs


def test_a_record_linked_in_from_outside_the_root_is_on_the_card(out, tmp_path):
    # An upstream record linked in is not indexed (no record accounts for its artifact); the
    # model's own record and the evidence are read where they are named, so the link is followed.
    record = sidecar_of(out / "models/konvid_mos_head.onnx")
    planted = tmp_path / record.name
    shutil.move(record, planted)
    record.symlink_to(planted)  # the same bytes, but kept where the root's keeper never looks
    try:
        top = failing(out, tmp_path / "card.md")
    finally:
        record.unlink()
        shutil.move(planted, record)
    assert (
        "The record `models/konvid_mos_head.onnx.manifest.json` (a link to a record outside "
        "the root) of `ai/scripts/export_mos_head_onnx.py` is read from outside the root."
    ) in top


LOCAL_ONLY = "not present here (local-only evidence)"


def test_a_local_corpus_absent_here_is_local_only_evidence_and_the_card_passes(out, tmp_path):
    sample = out / "sample"
    recorded = {
        p.relative_to(out).as_posix(): sha256(p)
        for p in [sample / "mos/konvid-150k.jsonl", sample / "k150k/metadata.jsonl"]
    }
    folder = load_sidecar(sidecar_of(sample))["run_provenance"]["outputs"]["sample"]
    card = tmp_path / "card.md"
    with absent(sample):
        proc = render(out, card)
    assert proc.returncode == 0, proc.stderr
    text = card.read_text("utf-8")
    assert "EVIDENCE INCOMPLETE" not in text
    assert text.split("\n")[2].startswith("**Evidence: complete.**")
    assert "9 recorded artifacts are not present here (local-only evidence)" in text
    artifacts = section(text, "Artifacts")
    for relative, digest in recorded.items():  # the digest recorded, though the file is gone
        line = next(x for x in artifacts.splitlines() if f"| `{relative}` |" in x)
        assert line.endswith(f"| sha256 `{digest}` | {LOCAL_ONLY} |")
    line = next(x for x in artifacts.splitlines() if x.startswith("| `sample` |"))
    assert f"blake3 `{folder['blake3']}`" in line
    assert line.endswith(f"| {LOCAL_ONLY} |")
    corpus = section(text, "Corpus").rstrip()
    assert corpus.endswith(f"(record `sample.manifest.json`), {LOCAL_ONLY}")
    # Everything that is present is still checked: the table the trainer read is unchanged.
    assert next(
        x for x in artifacts.splitlines() if "| `tables/k150k_enriched.parquet` |" in x
    ).endswith("| unchanged |")
    record = load_sidecar(sidecar_of(card))
    assert record["run_provenance"]["outcome"]["gates"]["evidence_complete"] == {
        "passed": True,
        "problems": 0,
        "local_only": 9,
    }
    shown = {e["path"]: e["sha256"] for e in record["local_only"]}
    assert len(shown) == 9
    assert all(shown[k] == v for k, v in recorded.items())
    assert shown["sample"] is None
    assert {e["path"]: e["blake3"] for e in record["local_only"]}["sample"] == folder["blake3"]
    again = tmp_path / "again.md"
    with absent(sample):
        assert render(out, again).returncode == 0
    assert again.read_bytes() == card.read_bytes()


def test_with_the_local_corpus_absent_a_changed_artifact_still_fails_the_card(out, tmp_path):
    with restored(out), absent(out / "sample"):
        table = out / "tables/k150k_enriched.parquet"
        table.write_bytes(table.read_bytes().replace(b"PAR1", b"PAR2", 1))
        top = failing(out, tmp_path / "card.md")
    assert "1 problem.**" in top
    assert "The artifact `tables/k150k_enriched.parquet` is changed since it was recorded" in top
    assert "sample" not in top  # the absent corpus is not one of the problems


def test_with_the_local_corpus_absent_a_missing_record_still_fails_the_card(out, tmp_path):
    with restored(out), absent(out / "sample"):
        sidecar_of(out / "sample").unlink()  # nothing now vouches for the corpus's digests
        top = failing(out, tmp_path / "card.md")
    assert "No record accounts for `sample/mos/konvid-150k.jsonl`" in top
    assert "The chain does not lead back to a corpus." in top


def test_an_artifact_present_again_with_other_bytes_is_not_local_only(out, tmp_path):
    # Absent is local-only; present with other bytes contradicts the record, even in the corpus.
    with restored(out):
        shard = out / "sample/mos/konvid-150k.jsonl"
        shard.write_bytes(shard.read_bytes() + b"\n")
        top = failing(out, tmp_path / "card.md")
    assert "The artifact `sample/mos/konvid-150k.jsonl` is changed since it was recorded" in top
