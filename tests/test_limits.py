"""A record the tool writes is one its reader takes: runs past each of the reader's limits.

Each run is a real decorated script, as a subprocess, that goes past one limit of
provenance.record.limits (declared paths, bytes, values, integer digits, nesting); after it,
``show``, ``verify`` and ``export`` read what it wrote (exit 0 or 1, never 2), and the record says
what it left out.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from typing import Any

import blake3
import pytest

from provenance.record.limits import MAX_DECLARED, MAX_RECORD_BYTES, MAX_VALUES, compact
from provenance.records import load
from tests.handmade import cli_in, project, run_in

SCRIPT = """
import argparse, json, os, signal, sys
from pathlib import Path
from provenance import Glob, current_run, recorded_run

def parser():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--inputs", nargs="*", default=[])
    p.add_argument("--folder")
    p.add_argument("--note", default="")
    p.add_argument("--commas", type=int, default=0)
    p.add_argument("--text-bytes", type=int, default=0)
    p.add_argument("--digits", type=int, default=0)
    p.add_argument("--fail-commas", type=int, default=0)
    p.add_argument("--kill", action="store_true")
    p.add_argument("--manifest-out")
    p.add_argument("--own-depth", type=int, default=0)
    return p

@recorded_run(
    inputs={"data": "inputs", "many": Glob("{folder}/*.txt")},
    outputs={"model": "out"},
    embed_into="model",
)
def main(argv=None):
    args = parser().parse_args(argv)
    if args.kill:
        os.kill(os.getpid(), signal.SIGKILL)
    model = {"weights": [1, 2, 3]}
    if args.own_depth:
        model["nested"] = json.loads("[" * args.own_depth + "]" * args.own_depth)
    Path(args.out).write_text(json.dumps(model))
    if args.manifest_out:
        Path(args.manifest_out).write_text(json.dumps(model))
    if args.commas:
        current_run().record(csv="," * args.commas)
    if args.text_bytes:
        current_run().record(huge="x" * args.text_bytes)
    if args.digits:
        current_run().record(number=10 ** args.digits, small=7)
    if args.fail_commas:
        raise RuntimeError("," * args.fail_commas)
    return 0

if __name__ == "__main__":
    extra = os.environ.get("HUGE_NOTE")
    sys.exit(main(sys.argv[1:] + (["--note", "," * int(extra)] if extra else [])))
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = project(tmp_path / "proj")
    (root / "script.py").write_text(SCRIPT)
    return root


def record_of(folder: Path, name: str = "model.json.manifest.json") -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / name).read_text("utf-8"))
    return document


def commands_read(folder: Path, given: str = "model.json") -> None:
    """show, verify and both exports take the record: no refusal, no usage exit."""
    for argv in (
        ("show", given),
        ("show", "--json", given),
        ("verify", given),
        ("export", "--format", "slsa", given),
        ("export", "--format", "openlineage", given),
    ):
        done = cli_in(folder, *argv)
        assert done.returncode in (0, 1), (argv, done.stderr[-2000:])
        assert "not a sidecar" not in done.stderr


def marker_of(value: Any, original: bytes) -> None:
    """A value marker that says the size and digest of what it stands for."""
    assert set(value) == {"$left_out", "$bytes", "$blake3"}
    assert value["$bytes"] == len(original)
    assert value["$blake3"] == blake3.blake3(original).hexdigest()


def test_twenty_thousand_and_one_inputs_as_a_list_keep_what_fits_and_say_what_is_left_out(
    folder: Path,
):
    paths = [f"in/f{i:05d}.txt" for i in range(MAX_DECLARED + 1)]  # missing: nothing to hash
    done = run_in(folder, "script.py", "--out", "model.json", "--inputs", *paths)
    assert done.returncode == 0, done.stderr[-2000:]
    block = record_of(folder)["run_provenance"]
    kept = block["inputs"]["data"]
    # One output and one Glob slot besides: the list gives way.
    assert len(kept) == MAX_DECLARED - 2
    assert [e["path"] for e in kept] == paths[: MAX_DECLARED - 2]
    whole = [{"exists": False, "path": p} for p in paths]
    assert block["left_out"]["paths"] == [
        {
            "table": "inputs",
            "name": "data",
            "total": MAX_DECLARED + 1,
            "kept": MAX_DECLARED - 2,
            "left_out": 3,
            "blake3": blake3.blake3(compact(whole)).hexdigest(),
        }
    ]
    commands_read(folder)
    shown = cli_in(folder, "show", "model.json")
    assert "inputs data: 3 of 20001 paths, kept the first 19998" in shown.stdout
    verified = cli_in(folder, "verify", "model.json")
    assert "left out of the record, past the 19998 it kept: not verified" in verified.stdout


def test_twenty_thousand_and_one_inputs_from_a_glob(folder: Path):
    (folder / "in").mkdir()
    for i in range(MAX_DECLARED + 1):
        (folder / "in" / f"f{i:05d}.txt").touch()
    done = run_in(folder, "script.py", "--out", "model.json", "--folder", "in")
    assert done.returncode == 0, done.stderr[-2000:]
    block = record_of(folder)["run_provenance"]
    assert block["inputs"]["data"] == []  # no --inputs: a list of none
    assert len(block["inputs"]["many"]) == MAX_DECLARED - 1
    assert block["left_out"]["paths"][0]["left_out"] == 2
    assert cli_in(folder, "show", "model.json").returncode == 0


def test_the_running_record_of_a_run_killed_with_too_many_paths_reads(folder: Path):
    paths = [f"in/f{i:05d}.txt" for i in range(MAX_DECLARED + 1)]
    done = run_in(folder, "script.py", "--out", "model.json", "--kill", "--inputs", *paths)
    assert done.returncode == -signal.SIGKILL
    (running,) = folder.glob("model.json.manifest.running.*.json")
    assert load(running).block["left_out"]["paths"][0]["left_out"] == 2  # the Glob waits
    shown = cli_in(folder, "show", running.name)
    assert shown.returncode == 0, shown.stderr
    assert "lost" in shown.stdout


def test_a_field_of_70_mb_is_replaced_by_its_size_and_digest(folder: Path):
    size = 70 * 1024 * 1024
    assert size > MAX_RECORD_BYTES
    done = run_in(folder, "script.py", "--out", "model.json", "--text-bytes", size)
    assert done.returncode == 0, done.stderr[-2000:]
    document = record_of(folder)
    marker_of(document["huge"], compact("x" * size))
    assert document["run_provenance"]["left_out"] == {"values": ["/huge"]}
    commands_read(folder)


def test_a_field_with_more_values_than_a_reader_counts(folder: Path):
    """2,000,001 commas in one text: two megabytes, but over the values a reader counts."""
    done = run_in(folder, "script.py", "--out", "model.json", "--commas", MAX_VALUES + 1)
    assert done.returncode == 0, done.stderr[-2000:]
    document = record_of(folder)
    marker_of(document["csv"], compact("," * (MAX_VALUES + 1)))
    assert document["run_provenance"]["left_out"] == {"values": ["/csv"]}
    commands_read(folder)
    # The same run gives the same bytes.
    first = (folder / "model.json.manifest.json").read_bytes()
    (folder / "model.json").unlink()
    (folder / "model.json.manifest.json").unlink()
    run_in(folder, "script.py", "--out", "model.json", "--commas", MAX_VALUES + 1)
    assert (folder / "model.json.manifest.json").read_bytes() == first


@pytest.mark.parametrize("digits", [65, 5000])
def test_an_integer_longer_than_a_reader_takes(folder: Path, digits: int):
    done = run_in(folder, "script.py", "--out", "model.json", "--digits", digits)
    assert done.returncode == 0, done.stderr[-2000:]
    document = record_of(folder)
    number = 10**digits
    assert document["small"] == 7
    assert document["number"] == {
        "$left_out": f"an integer of {number.bit_length():,} bits: over the 64 digits a "
        "record holds",
        "$bits": number.bit_length(),
        "$blake3_of_hex": blake3.blake3(format(number, "x").encode()).hexdigest(),
    }
    assert document["run_provenance"]["left_out"] == {"values": ["/number"]}
    commands_read(folder)


def test_a_huge_error_message_is_replaced_and_the_exit_code_kept(folder: Path):
    done = run_in(folder, "script.py", "--out", "model.json", "--fail-commas", MAX_VALUES + 1)
    assert done.returncode == 1
    block = record_of(folder)["run_provenance"]
    message = block["outcome"]["error"]["message"]
    digest = blake3.blake3(b"," * (MAX_VALUES + 1)).hexdigest()
    assert message.startswith(f"<left out: a text of {MAX_VALUES + 1:,} bytes, blake3 {digest}")
    assert block["outcome"]["status"] == "failed"
    assert block["left_out"] == {"values": ["/run_provenance/outcome/error/message"]}
    commands_read(folder)


def test_a_huge_argument_is_replaced_in_argv_and_in_args(folder: Path):
    done = run_in(
        folder, "script.py", "--out", "model.json", env={"HUGE_NOTE": str(MAX_VALUES + 1)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    block = record_of(folder)["run_provenance"]
    note = "," * (MAX_VALUES + 1)
    marker_of(block["args"]["note"], compact(note))
    assert block["argv"][-1].startswith(f"<left out: a text of {len(note):,} bytes")
    # Either one alone is over the limit: both go, the larger (args, quoted) first.
    assert sorted(block["left_out"]["values"]) == [
        "/run_provenance/args/note",
        f"/run_provenance/argv/{len(block['argv']) - 1}",
    ]
    commands_read(folder)
    # The marker is no argument to run the script with again.
    replay = cli_in(folder, "replay", "--run", "model.json")
    assert replay.returncode == 2
    assert "an argument was too large for the record" in replay.stderr


def test_a_script_document_nested_too_deep_keeps_the_record_beside_it(folder: Path):
    """--manifest-out merges the block into the script's own JSON; one a reader would refuse
    (nested past its depth) is left alone, and the record goes beside it."""
    done = run_in(
        folder,
        "script.py",
        "--out",
        "model.json",
        "--manifest-out",
        "report.json",
        "--own-depth",
        150,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "run_provenance" not in (folder / "report.json").read_text()
    assert "this run's record is" in done.stderr
    commands_read(folder, "report.json")
    # embed_into: the model is as deep; the block is not put where no reader takes it.
    assert "run_provenance" not in (folder / "model.json").read_text()


def test_every_record_a_run_leaves_reads_on_its_own(folder: Path, tmp_path: Path):
    """The embedded block is a record too: a copy of the artifact without its sidecar reads."""
    done = run_in(
        folder, "script.py", "--out", "model.json", env={"HUGE_NOTE": str(MAX_VALUES + 1)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    embedded = json.loads((folder / "model.json").read_text())["run_provenance"]
    assert embedded["left_out"]["values"][0] == "/run_provenance/args/note"
    alone = project(tmp_path / "alone")
    shutil.copy(folder / "script.py", alone / "script.py")
    shutil.copy(folder / "model.json", alone / "model.json")
    assert cli_in(alone, "show", "model.json").returncode == 0
