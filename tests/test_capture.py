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

    def on_parsed(self, parser, argv, namespace):
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
