"""Argparse capture: scoped to active runs and to their context."""

from __future__ import annotations

import argparse
import threading

import pytest

from provenance import capture
from provenance.run import Run, RunSpec


class Listener:
    def __init__(self):
        self.parsed = []
        self.exits = []

    def on_parsed(self, parser, argv, namespace, complete=True):
        self.parsed.append((argv, vars(namespace)))

    def on_parse_exit(self, exc):
        self.exits.append(exc)


def simple_parser():
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--n", type=int)
    return parser


class TestScope:
    def test_patched_only_while_a_run_is_active(self, tmp_path):
        original = argparse.ArgumentParser.parse_known_args
        assert not capture.patched()
        with Run(RunSpec(outputs={"o": tmp_path / "o"}), __file__, []):
            assert capture.patched()
            assert argparse.ArgumentParser.parse_known_args is not original
        assert not capture.patched()
        assert argparse.ArgumentParser.parse_known_args is original

    def test_nested_scopes_unpatch_once_the_last_ends(self):
        outer, inner = Listener(), Listener()
        with capture.capturing(outer):
            with capture.capturing(inner):
                simple_parser().parse_args(["--n", "1"])
            assert capture.patched()
            simple_parser().parse_args(["--n", "2"])
        assert not capture.patched()
        assert [p[1]["n"] for p in inner.parsed] == [1]
        assert [p[1]["n"] for p in outer.parsed] == [2]

    def test_other_threads_are_not_captured(self):
        listener = Listener()
        with capture.capturing(listener):
            worker = threading.Thread(target=lambda: simple_parser().parse_args(["--n", "9"]))
            worker.start()
            worker.join()
        assert listener.parsed == []


class TestWhatIsCaptured:
    def test_one_record_per_top_level_parse(self):
        parser = argparse.ArgumentParser()
        parser.add_argument("--v", action="store_true")
        sub = parser.add_subparsers(dest="cmd")
        train = sub.add_parser("train")
        train.add_argument("--epochs", type=int)
        listener = Listener()
        with capture.capturing(listener):
            parser.parse_args(["--v", "train", "--epochs", "3"])
        assert listener.parsed == [
            (["--v", "train", "--epochs", "3"], {"v": True, "cmd": "train", "epochs": 3})
        ]

    def test_known_args_and_intermixed(self):
        listener = Listener()
        with capture.capturing(listener):
            simple_parser().parse_known_args(["--n", "1", "--rest"])
            simple_parser().parse_intermixed_args(["--n", "2"])
        assert [p[1]["n"] for p in listener.parsed] == [1, 2]

    def test_default_argv_is_sys_argv(self, monkeypatch):
        monkeypatch.setattr("sys.argv", ["prog", "--n", "5"])
        listener = Listener()
        with capture.capturing(listener):
            simple_parser().parse_args()
        assert listener.parsed == [(["--n", "5"], {"n": 5})]

    @pytest.mark.parametrize("argv", [["--help"], ["--n", "notanumber"]])
    def test_exits_are_reported_not_parsed(self, argv, capsys):
        listener = Listener()
        with capture.capturing(listener), pytest.raises(SystemExit) as caught:
            simple_parser().parse_args(argv)
        assert listener.exits == [caught.value]
        assert listener.parsed == []


PROBE = """
import argparse, sys
from provenance import recorded_run

@recorded_run(outputs={"out": "out"})
def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--late", action="store_true")
    args = parser.parse_args(argv)
    if args.late:  # a framework imported while the run is active is patched in at import
        import click
        from provenance import capture
        print("active:", ",".join(capture.active()))
    open(args.out, "w").write("x")
    return 0

main(sys.argv[1:])
frameworks = ("click", "typer", "hydra", "omegaconf", "jsonargparse", "transformers")
print("imported:", ",".join(m for m in frameworks if m in sys.modules))
print("adapters:", ",".join(m for m in sys.modules if m.startswith("provenance.capture.")))
"""


class TestFrameworksOnDemand:
    def test_a_plain_argparse_script_loads_no_framework_and_no_adapter(self, tmp_path):
        from tests.conftest import run_python

        (tmp_path / "probe.py").write_text(PROBE)
        proc = run_python(tmp_path / "probe.py", "--out", tmp_path / "o.txt")
        assert proc.returncode == 0, proc.stderr
        assert "imported: \n" in proc.stdout
        # random is the standard library's, as argparse is: its seeds are always heard.
        assert (
            "adapters: provenance.capture.seeds,provenance.capture.argparse,"
            "provenance.capture.seeds.random\n"
        ) in proc.stdout

    def test_a_framework_imported_during_the_run_is_patched_in(self, tmp_path):
        from tests.conftest import run_python

        (tmp_path / "probe.py").write_text(PROBE)
        proc = run_python(tmp_path / "probe.py", "--out", tmp_path / "o.txt", "--late")
        assert proc.returncode == 0, proc.stderr
        assert "active: argparse,click,random\n" in proc.stdout
