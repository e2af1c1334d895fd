"""The provenance command, run as a real subprocess."""

from __future__ import annotations

import json
import tokenize

from provenance import load_schema, recorded_run
from tests.conftest import ROOT, run_fake, run_python


def cli(*argv):
    return run_python("-m", "provenance", *argv)


def test_schema_prints_the_shipped_schema():
    proc = cli("schema")
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == load_schema()


def test_validate_accepts_an_artifact_or_its_sidecar(tmp_path, shards):
    out = tmp_path / "t.tsv"
    run_fake("table_builder", *shards, "--out", out)
    proc = cli("validate", out, f"{out}.manifest.json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(": valid") == 2


def test_an_artifact_named_manifest_json_is_an_artifact(tmp_path):
    artifact = tmp_path / "manifest.json"
    with recorded_run(outputs={"m": artifact}):
        artifact.write_text("{}")
    proc = cli("validate", artifact)
    assert proc.returncode == 0, proc.stderr
    assert "manifest.json.manifest.json: valid" in proc.stdout


def test_validate_reports_invalid_and_unreadable(tmp_path):
    bad = tmp_path / "x.manifest.json"
    bad.write_text('{"schema": "provenance.manifest/v1"}')
    assert cli("validate", bad).returncode == 1
    missing = cli("validate", tmp_path / "nothing.manifest.json")
    assert missing.returncode == 2
    assert "unreadable" in missing.stderr


def test_usage_error_exits_2():
    assert cli("frobnicate").returncode == 2


def test_validate_does_not_hang_on_a_fifo_or_crash_on_deep_nesting(tmp_path):
    import os

    fifo = tmp_path / "x.manifest.json"
    os.mkfifo(fifo)
    deep = tmp_path / "y.manifest.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    proc = run_python("-m", "provenance", "validate", fifo, deep)
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr
    assert "nested too deeply" in proc.stderr


def test_the_command_starts_without_the_decorators_machinery():
    """Reading records needs no run: the command imports neither wrapt nor the lifecycle, so
    a warm lineage or show starts fast (bench/lineage_scale.py)."""
    import subprocess
    import sys

    probe = (
        "import sys, provenance.cli; "
        "print(sorted(m for m in ('wrapt', 'provenance.run', 'provenance.launch.runner') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_mistyped_command_or_choice_gets_a_suggestion():
    done = cli("shwo", "x")
    assert done.returncode == 2
    assert "did you mean 'show'?" in done.stderr
    done = cli("export", "x", "--format", "slas")
    assert done.returncode == 2
    assert "did you mean 'slsa'?" in done.stderr
    assert "did you mean" not in cli("zzzzzz").stderr  # nothing close: no guess


def test_a_bad_flag_is_reported_with_the_commands_own_usage():
    for command in ("show", "verify", "lineage", "validate"):
        done = cli(command, "--bogus", "x")
        assert done.returncode == 2
        assert done.stderr.startswith(f"usage: provenance {command} ")
        assert f"provenance {command}: error: unrecognized arguments: --bogus" in done.stderr


def test_every_command_has_a_description_examples_and_shown_defaults():
    top = cli("--help").stdout
    commands = [
        "show",
        "verify",
        "diff",
        "lineage",
        "replay",
        "schema",
        "validate",
        "export",
        "run",
    ]
    for command in commands:
        assert command in top
        text = cli(command, "--help").stdout
        description = text.split("\n\n")[1]
        assert len(description.split()) >= 5, command
        assert f"examples:\n  provenance {command}" in text, command
    verify_help = " ".join(cli("verify", "--help").stdout.split())
    assert "(default 1T)" in verify_help
    assert "(default: 1000000)" in verify_help


def test_sizes_are_taken_and_refused_as_a_person_types_them():
    from provenance.commands import size_arg, size_default
    from provenance.text import human_size

    assert [size_arg(s) for s in ("1G", "512M", "64k", "1.5T", "100", "2GiB")] == [
        2**30, 512 * 2**20, 64 * 2**10, int(1.5 * 2**40), 100, 2**31,
    ]  # fmt: skip
    assert [human_size(n) for n in (0, 812, 1536, 2**40, 5 * 2**30 + 1)] == [
        "0 B", "812 B", "1.5 KiB", "1 TiB", "5 GiB",
    ]  # fmt: skip
    assert size_default(2**40) == "1T"
    assert size_default(1000) == "1000"
    done = cli("verify", "--max-bytes", "5Q", "x")
    assert done.returncode == 2
    assert "not a size: '5Q'" in done.stderr


def test_counts_read_as_words_not_as_word_s():
    from provenance.text import plural

    assert plural(1, "difference") == "1 difference"
    assert plural(0, "run") == "0 runs"
    assert plural(12_000, "record") == "12,000 records"
    assert plural(2, "other record") == "2 other records"
    assert plural(3, "child", "children") == "3 children"
    said = [p.name for p in (ROOT / "provenance").rglob("*.j2") if "(s)" in p.read_text()]
    for path in (ROOT / "provenance" / "commands").glob("*.py"):
        with path.open("rb") as handle:
            strings = [
                t.string for t in tokenize.tokenize(handle.readline) if t.type == tokenize.STRING
            ]
        said += [f"{path.name}: {s}" for s in strings if "(s)" in s]
    assert said == [], "a count said as word(s)"


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from provenance.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = [
        f"{name} {action.option_strings or action.dest}"
        for name, command in commands.choices.items()
        for action in command._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert silent == []
