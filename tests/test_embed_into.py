"""``embed_into``: what it may name (checked when the decorator is applied), and a list of outputs
(a list declaration, a Glob, a list given to ``add_output``) gets the block in each item."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from provenance import Glob, current_run, recorded_run, validate
from provenance.errors import DeclarationError
from provenance.record.sidecar import MANIFEST_SCHEMA
from tests.conftest import load_sidecar, run_python


def wrapped(block: dict[str, Any]) -> dict[str, Any]:
    return {"schema": MANIFEST_SCHEMA, "run_provenance": block}


class TestAtDecoration:
    @pytest.mark.parametrize(
        ("embed_into", "said"),
        [
            ("metrics", r"embed_into='metrics' names no declared output \(outputs: model, re"),
            (("report", "metric"), r"embed_into='metric' names no declared output"),
            ((), r"embed_into is an empty tuple"),
            ([], r"embed_into is an empty list"),
            (("report", 3), r"not int 3"),
            ((b"report",), r"not bytes b'report'"),
            (7, r"names an output or a tuple of them, not int"),
            ({"report"}, r"names an output or a tuple of them, not set"),
            (("report", "model", "report"), r"embed_into names 'report' more than once"),
            ("", r"embed_into='' names no declared output"),
        ],
    )
    def test_a_wrong_embed_into_is_one_line_before_anything_runs(self, embed_into, said):
        ran = []
        with pytest.raises(DeclarationError, match=said) as caught:

            @recorded_run(outputs={"report": "out", "model": "model"}, embed_into=embed_into)
            def main(argv: list[str]) -> int:
                ran.append(argv)
                return 0

        assert "\n" not in str(caught.value)
        assert ran == []

    def test_without_outputs_every_name_is_refused(self):
        with pytest.raises(DeclarationError, match=r"names no declared output \(outputs: none\)"):
            recorded_run(embed_into="report")

    def test_the_context_manager_form_is_checked_too(self):
        with pytest.raises(DeclarationError, match="more than once"):
            recorded_run(outputs={"report": "out"}, embed_into=("report", "report"))

    def test_a_list_of_names_is_taken_as_a_tuple(self, tmp_path):
        model, report = tmp_path / "model.json", tmp_path / "report.json"

        @recorded_run(outputs={"model": model, "report": report}, embed_into=["model", "report"])
        def main() -> int:
            model.write_text('{"w": 1}')
            report.write_text('{"plcc": 0.5}')
            return 0

        assert main() == 0
        blocks = [json.loads(p.read_text("utf-8"))["run_provenance"] for p in (model, report)]
        assert blocks[0] == blocks[1]
        assert blocks[0]["outputs"]["report"]["embedded_here"] is True


def parser_of() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    return parser


def sidecars(args: argparse.Namespace) -> list[Path]:
    return [args.out_dir / f"seed{s}.json" for s in args.seeds]


class TestEachItemOfAList:
    def test_each_json_item_the_run_wrote_carries_the_block(self, tmp_path):
        @recorded_run(
            outputs={"manifest": lambda a: a.out_dir / "all.json", "sidecars": sidecars},
            embed_into=("manifest", "sidecars"),
        )
        def main(argv: list[str]) -> int:
            args = parser_of().parse_args(argv)
            for path in sidecars(args):
                path.write_text(json.dumps({"seed": path.stem}))
            (args.out_dir / "all.json").write_text('{"members": 3}')
            return 0

        assert main(["--out-dir", str(tmp_path), "--seeds", "0", "1", "2"]) == 0
        hosts = [tmp_path / f"seed{s}.json" for s in range(3)]
        documents = [json.loads(p.read_text("utf-8")) for p in hosts]
        assert [d["seed"] for d in documents] == ["seed0", "seed1", "seed2"], "the item's own keys"
        blocks = [d["run_provenance"] for d in documents]
        assert blocks[0] == blocks[1] == blocks[2]
        manifest = json.loads((tmp_path / "all.json").read_text("utf-8"))
        assert manifest["run_provenance"] == blocks[0]
        # No copy can hold the digest of any host: the block changes every one of them.
        assert [e["embedded_here"] for e in blocks[0]["outputs"]["sidecars"]] == [True] * 3
        assert blocks[0]["outputs"]["manifest"]["embedded_here"] is True
        assert blocks[0]["outcome"]["status"] == "succeeded"
        validate(wrapped(blocks[0]))
        record = load_sidecar(tmp_path / "all.json.manifest.json")["run_provenance"]
        final = [e["blake3"] for e in record["outputs"]["sidecars"]]
        assert len(set(final)) == 3, "the sidecar has each item's final digest"

    def test_an_item_the_run_did_not_write_or_not_json_is_left_alone(self, tmp_path):
        kept = tmp_path / "seed1.json"
        kept.write_text('{"earlier": true}')
        (tmp_path / "seed2.json").write_text("[1, 2]")  # written below, not an object

        @recorded_run(outputs={"sidecars": sidecars}, embed_into="sidecars")
        def main(argv: list[str]) -> int:
            args = parser_of().parse_args(argv)
            (args.out_dir / "seed0.json").write_text('{"seed": 0}')
            (args.out_dir / "seed2.json").write_text("[3]")
            return 0

        assert main(["--out-dir", str(tmp_path), "--seeds", "0", "1", "2"]) == 0
        assert kept.read_text("utf-8") == '{"earlier": true}'
        assert (tmp_path / "seed2.json").read_text("utf-8") == "[3]"
        block = json.loads((tmp_path / "seed0.json").read_text("utf-8"))["run_provenance"]
        entries = block["outputs"]["sidecars"]
        assert entries[0]["embedded_here"] is True
        assert "embedded_here" not in entries[1]
        assert entries[1]["written_by_run"] is False
        assert "embedded_here" not in entries[2]
        assert entries[2]["blake3"]

    def test_a_glob_and_a_list_added_from_the_body_are_embedded_item_by_item(self, tmp_path):
        stale = tmp_path / "seed9.json"
        stale.write_text('{"seed": 9}')

        @recorded_run(
            outputs={
                "found": Glob("{out_dir}/seed*.json"),
                "added": lambda a: None,
                "log": lambda a: a.out_dir / "log.txt",
            },
            embed_into=("found", "added"),
        )
        def main(argv: list[str]) -> int:
            args = parser_of().parse_args(argv)
            written = sidecars(args)
            for path in written:
                path.write_text("{}")
            extra = [args.out_dir / "extra_a.json", args.out_dir / "extra_b.json"]
            for path in extra:
                path.write_text('{"extra": true}')
            current_run().add_output("added", extra)
            (args.out_dir / "log.txt").write_text("done")
            return 0

        assert main(["--out-dir", str(tmp_path), "--seeds", "0", "1"]) == 0
        assert stale.read_text("utf-8") == '{"seed": 9}', "a match the run did not write"
        for name in ("seed0.json", "seed1.json", "extra_a.json", "extra_b.json"):
            block = json.loads((tmp_path / name).read_text("utf-8"))["run_provenance"]
            validate(wrapped(block))
            hosts = [*block["outputs"]["found"], *block["outputs"]["added"]]
            assert sum(1 for e in hosts if e.get("embedded_here")) == 4

    def test_a_list_item_is_embedded_once_even_when_named_twice(self, tmp_path):
        model = tmp_path / "seed0.json"

        @recorded_run(
            outputs={"sidecars": sidecars, "first": lambda a: a.out_dir / "seed0.json"},
            embed_into=("sidecars", "first"),
        )
        def main(argv: list[str]) -> int:
            parser_of().parse_args(argv)
            model.write_text('{"seed": 0}')
            return 0

        assert main(["--out-dir", str(tmp_path), "--seeds", "0"]) == 0
        document = json.loads(model.read_text("utf-8"))
        assert list(document) == ["seed", "run_provenance"]
        validate(wrapped(document["run_provenance"]))


def test_a_refused_embed_into_stops_a_script_before_its_work(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\n"
        "from provenance import recorded_run\n"
        "@recorded_run(outputs={'report': 'out'}, embed_into='reprot')\n"
        "def main(argv=None):\n"
        "    print('work')\n"
        "    return 0\n"
        "sys.exit(main())\n"
    )
    proc = run_python(script, cwd=tmp_path)
    assert proc.returncode != 0
    assert "embed_into='reprot' names no declared output (outputs: report)" in proc.stderr
    assert "work" not in proc.stdout
    assert not list(tmp_path.glob("*.manifest*"))


def test_show_and_verify_tell_the_file_read_from_the_other_hosts(tmp_path):
    """Reading one host of several, show and verify say which entry is that very file and which
    are other copies, each to be verified through the run's sidecar."""

    @recorded_run(
        outputs={"manifest": lambda a: a.out_dir / "all.json", "sidecars": sidecars},
        embed_into=("manifest", "sidecars"),
        root=tmp_path,
    )
    def main(argv: list[str]) -> int:
        args = parser_of().parse_args(argv)
        for path in [*sidecars(args), args.out_dir / "all.json"]:
            path.write_text("{}")
        return 0

    assert main(["--out-dir", str(tmp_path), "--seeds", "0", "1"]) == 0
    shown = run_python("-m", "provenance", "show", tmp_path / "seed1.json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:] if line.strip()}
    assert lines["sidecars[1]"].endswith("(this file: the block is embedded in it)")
    assert lines["sidecars[0]"].endswith("(a copy of the block is embedded in it)")
    assert lines["manifest"].endswith("(a copy of the block is embedded in it)")
    checked = run_python(
        "-m", "provenance", "verify", "--json", tmp_path / "seed0.json", cwd=tmp_path
    )
    (report,) = json.loads(checked.stdout)
    details = {c["name"]: c["detail"] for c in report["checks"] if c["group"] == "output"}
    assert (
        details["sidecars[0]"]
        == "this copy of the block is embedded in it: verify the run's sidecar"
    )
    assert (
        details["sidecars[1]"] == "a copy of the block is embedded in it: verify the run's sidecar"
    )
