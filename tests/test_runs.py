"""``provenance runs`` and ``provenance.find_runs``: every recorded run under some folders."""

from __future__ import annotations

import fcntl
import json
import re
import sqlite3
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest

import provenance
from provenance.stores.digest_cache import ENVIRONMENT, RACY_WINDOW_NS
from provenance.stores.lineage_index import FILE_NAME
from tests.handmade import document, project, run_cli, write


def run_doc(
    script: str,
    args: dict[str, Any],
    *,
    status: str = "succeeded",
    gates: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    exit_code: int | None = 0,
) -> dict[str, Any]:
    doc = document(script, status=status, exit_code=exit_code, gates=gates)
    doc["run_provenance"]["args"] = args
    if config is not None:
        doc["run_provenance"]["config"] = {"files": [], "resolved": config}
    return doc


def sweep(proj: Path) -> Path:
    """Three training runs of a sweep, and an evaluation."""
    runs = proj / "runs"
    write(
        runs / "a" / "model.bin.manifest.json",
        run_doc(
            "train.py",
            {"lr": 0.01, "seed": 1},
            gates={"plcc": {"passed": True, "plcc": 0.9}},
            config={"trainer": {"epochs": 5}},
        ),
    )
    write(
        runs / "b" / "model.bin.manifest.json",
        run_doc(
            "train.py",
            {"lr": 0.1, "seed": 1},
            gates={"plcc": {"passed": False, "plcc": 0.2}},
            config={"trainer": {"epochs": 5}},
        ),
    )
    write(
        runs / "c" / "model.bin.manifest.json",
        run_doc(
            "train.py",
            {"lr": 0.01, "seed": 2},
            status="failed",
            exit_code=1,
            config={"trainer": {"epochs": 7}},
        ),
    )
    write(runs / "eval.json.manifest.json", run_doc("eval.py", {"seed": 1}))
    return runs


def aged(folder: Path) -> None:
    """Wait until the records just written are old enough to be stored (not racy)."""
    newest = max(p.lstat().st_ctime_ns for p in folder.rglob("*"))
    time.sleep(max(0.0, (newest + RACY_WINDOW_NS - time.time_ns()) / 1e9 + 0.05))


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENVIRONMENT, str(tmp_path / "cache" / "digests.sqlite3"))
    proj = project(tmp_path / "proj")
    monkeypatch.chdir(proj)
    return proj


def runs(*argv: object) -> tuple[int, str, str]:
    result = run_cli("runs", *argv)
    return result.code, result.out, result.err


class TestRunsCommand:
    def test_one_line_a_run_with_the_arguments_that_differ(self, proj):
        sweep(proj)
        code, out, err = runs("runs")
        assert (code, err) == (0, "")
        assert out.splitlines() == [
            "runs/a/model.bin  train.py  succeeded   plcc:pass  "
            "lr=0.01 seed=1 config.trainer.epochs=5",
            "runs/b/model.bin  train.py  succeeded   plcc:FAIL  "
            "lr=0.1 seed=1 config.trainer.epochs=5",
            "runs/c/model.bin  train.py  failed (1)  -          "
            "lr=0.01 seed=2 config.trainer.epochs=7",
            "runs/eval.json    eval.py   succeeded   -          seed=1",
        ]

    def test_filters(self, proj):
        sweep(proj)

        def listed(*flags: str) -> list[str]:
            code, out, _ = runs("runs", *flags)
            assert code == 0
            return [line.split()[0] for line in out.splitlines()]

        assert listed("--where", "lr=0.01") == ["runs/a/model.bin", "runs/c/model.bin"]
        assert listed("--where", "args.lr=0.01", "--where", "seed=2") == ["runs/c/model.bin"]
        assert listed("--where", "trainer.epochs=5") == ["runs/a/model.bin", "runs/b/model.bin"]
        assert listed("--where", "config.trainer.epochs=7") == ["runs/c/model.bin"]
        assert listed("--where", 'lr="0.01"') == []  # a string is not a number
        assert listed("--gate", "plcc=pass") == ["runs/a/model.bin"]
        assert listed("--gate", "plcc=fail") == ["runs/b/model.bin"]
        assert listed("--status", "failed") == ["runs/c/model.bin"]
        assert listed("--script", "eval.py") == ["runs/eval.json"]
        assert listed("--script", "nothing.py") == []

    def test_the_differing_columns_are_those_of_the_runs_listed(self, proj):
        sweep(proj)
        _, out, _ = runs("runs", "--where", "lr=0.01", "--where", "trainer.epochs=5")
        assert out == "runs/a/model.bin  train.py  succeeded  plcc:pass\n"

    def test_bad_filters_are_one_line_and_exit_2(self, proj):
        for flags in (["--where", "lr"], ["--gate", "plcc=maybe"], ["--status", "odd"]):
            code, out, err = runs("runs", *flags)
            assert code == 2
            assert out == ""
            assert "Traceback" not in err
        code, _, err = runs("nowhere")
        assert code == 2
        assert err == "provenance: nowhere: no such file or folder\n"

    def test_json(self, proj):
        sweep(proj)
        _, out, _ = runs("runs", "--json", "--status", "failed")
        assert json.loads(out) == {
            "differing": [],
            "runs": [
                {
                    "record": "runs/c/model.bin.manifest.json",
                    "artifact": "runs/c/model.bin",
                    "script": "train.py",
                    "command": None,
                    "status": "failed",
                    "exit_code": 1,
                    "gates": {},
                    "params": {"args.lr": 0.01, "args.seed": 2, "config.trainer.epochs": 7},
                }
            ],
        }

    def test_the_output_is_the_same_bytes_cold_warm_and_without_the_index(self, proj, monkeypatch):
        sweep(proj)
        aged(proj)
        cold = runs("runs", "--json"), runs("runs")
        warm = runs("runs", "--json"), runs("runs")
        monkeypatch.setenv(ENVIRONMENT, "off")
        off = runs("runs", "--json"), runs("runs")
        assert cold == warm == off
        assert len(cold[1][1].splitlines()) == 4


class TestTheIndex:
    def stored(self, tmp_path: Path) -> int:
        with sqlite3.connect(tmp_path / "cache" / FILE_NAME) as db:
            count: int = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        return count

    @pytest.fixture
    def parsed(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """The records read through the strict reader from now on, by the path given."""
        from provenance import records

        read: list[str] = []
        real = records.load

        def counting(given: Any, *a: Any, **k: Any) -> Any:
            read.append(str(given))
            return real(given, *a, **k)

        monkeypatch.setattr(records, "load", counting)
        return read

    def test_a_warm_call_parses_no_unchanged_record(self, proj, tmp_path, request):
        sweep(proj)
        aged(proj)
        first = runs("runs")
        assert self.stored(tmp_path) == 4
        parsed = request.getfixturevalue("parsed")
        assert runs("runs") == first
        assert parsed == []

    def test_a_record_changed_between_two_calls_is_read_again(self, proj, tmp_path):
        folder = sweep(proj)
        aged(proj)
        runs("runs")
        record = folder / "b" / "model.bin.manifest.json"
        write(record, run_doc("train.py", {"lr": 0.5, "seed": 1}, status="interrupted"))
        aged(proj)
        _, out, _ = runs("runs", "--where", "lr=0.5")
        assert out.split()[:3] == ["runs/b/model.bin", "train.py", "interrupted"]
        assert runs("runs", "--where", "lr=0.1")[1] == ""
        record.unlink()
        assert "runs/b/" not in runs("runs")[1]

    def test_a_record_rewritten_with_its_bytes_is_not_parsed_and_one_changed_in_place_is(
        self, proj, request
    ):
        folder = sweep(proj)
        aged(proj)
        first = runs("runs")
        parsed = request.getfixturevalue("parsed")
        record = folder / "b" / "model.bin.manifest.json"
        text = record.read_text()
        record.unlink()
        record.write_text(text)  # a new file, the same bytes (copied, checked out again)
        assert runs("runs") == first  # racy, and still not parsed
        assert parsed == []
        aged(proj)
        assert runs("runs") == first
        assert parsed == []
        assert '"lr": 0.1' in text
        record.write_text(text.replace('"lr": 0.1', '"lr": 0.7'))  # in place, the same size
        _, out, _ = runs("runs", "--where", "lr=0.7")
        assert out.split()[:1] == ["runs/b/model.bin"]
        assert parsed == [str(Path("runs") / "b" / "model.bin.manifest.json")]

    def test_the_index_turned_off_is_never_written(self, proj, tmp_path, monkeypatch):
        sweep(proj)
        aged(proj)
        monkeypatch.setenv(ENVIRONMENT, "off")
        assert len(runs("runs")[1].splitlines()) == 4
        assert not (tmp_path / "cache").exists()

    def test_lineage_and_runs_share_the_index(self, proj, tmp_path):
        folder = sweep(proj)
        aged(proj)
        assert run_cli("lineage", folder / "a" / "model.bin").code == 0
        assert self.stored(tmp_path) == 4  # lineage stored the summaries runs reads


class TestScriptByPath:
    """``--script`` given a path matches the runs whose recorded entrypoint is that file."""

    def scripts(self, proj: Path) -> None:
        for name in ("train.py", "src/train.py", "tools/eval.py"):
            (proj / name).parent.mkdir(parents=True, exist_ok=True)
            (proj / name).write_text("print()\n")
        for name, script in (
            ("a", "train.py"),
            ("b", "src/train.py"),
            ("c", "tools/eval.py"),
            ("d", str(proj / "src" / "train.py")),  # recorded absolute
            ("e", "./src/../train.py"),  # recorded as typed
        ):
            write(proj / "runs" / name / "m.bin.manifest.json", run_doc(script, {}))

    def listed(self, *script: str | Path, at: Path | None = None) -> list[str]:
        found = provenance.find_runs([at or "runs"], script=str(script[0]))
        return [Path(r.artifact).parent.name for r in found]

    def test_a_path_names_a_file_whichever_way_it_is_written(self, proj, monkeypatch):
        self.scripts(proj)
        assert self.listed("train.py") == ["a", "b", "d", "e"]  # a file name: all of that name
        for given in ("./train.py", str(proj / "train.py"), "src/../train.py"):
            assert self.listed(given) == ["a", "e"], given
        for given in ("src/train.py", "./src/train.py", str(proj / "src" / "train.py")):
            assert self.listed(given) == ["b", "d"], given
        assert self.listed("./tools/eval.py") == ["c"]
        assert self.listed("./nothing.py") == []
        monkeypatch.chdir(proj / "src")  # another folder: relative to it
        assert self.listed("./train.py", at=proj / "runs") == ["b", "d"]
        assert self.listed("../train.py", at=proj / "runs") == ["a", "e"]
        assert self.listed("../tools/eval.py", at=proj / "runs") == ["c"]
        monkeypatch.chdir(proj.parent)  # outside the project: its root from the runs searched
        assert self.listed(f"{proj.name}/src/train.py", at=proj / "runs") == ["b", "d"]

    def test_through_a_link_to_the_file(self, proj, tmp_path):
        self.scripts(proj)
        (tmp_path / "linked.py").symlink_to(proj / "src" / "train.py")
        assert self.listed(str(tmp_path / "linked.py")) == ["b", "d"]

    def test_the_command_filters_the_same(self, proj):
        self.scripts(proj)
        _, out, _ = runs("runs", "--script", "./src/train.py")
        assert [line.split()[0] for line in out.splitlines()] == ["runs/b/m.bin", "runs/d/m.bin"]
        assert runs("runs", "--script", "./src/train.py", "--json") == runs(
            "runs", "--script", str(proj / "src" / "train.py"), "--json"
        )


class TestRunStates:
    def test_a_lost_and_a_running_run_show_as_such(self, proj):
        folder = sweep(proj)
        lost = folder / "d" / "model.bin.manifest.running.0000000a.json"
        live = folder / "e" / "model.bin.manifest.running.0000000b.json"
        for path in (lost, live):
            write(path, run_doc("train.py", {"lr": 1}, status="running", exit_code=None))
        with open(live, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # what a run under way holds
            _, out, _ = runs("runs", "--where", "lr=1")
        assert [line.split()[:3] for line in out.splitlines()] == [
            ["runs/d/model.bin", "train.py", "lost"],
            ["runs/e/model.bin", "train.py", "running"],
        ]
        # Once its process lets go, the same record is of a lost run: not an answer kept.
        found = provenance.find_runs(["runs"], status="lost")
        assert [r.record for r in found] == [str(p.relative_to(proj)) for p in (lost, live)]

    def test_a_failed_attempt_beside_a_sidecar_is_a_run_too(self, proj):
        folder = sweep(proj)
        write(
            folder / "a" / "model.bin.manifest.failed.json",
            run_doc("train.py", {"lr": 3}, status="failed", exit_code=2),
        )
        write(folder / "a" / "model.bin.manifest.previous.json", run_doc("train.py", {"lr": 4}))
        _, out, _ = runs("runs", "--script", "train.py")
        assert "failed (2)" in out
        assert "lr=3" in out
        assert "lr=4" not in out  # a superseded record is not another run

    def test_an_attempt_reads_as_one_not_as_the_artifacts_run(self, proj):
        folder = sweep(proj)
        for status, code in (("failed", 2), ("interrupted", 130), ("succeeded", 0)):
            write(
                folder / "a" / f"model.bin.manifest.{status}.json",
                run_doc("train.py", {"lr": 0.01, "seed": 1}, status=status, exit_code=code),
            )
        _, out, _ = runs("runs/a")
        # The same artifact, script and arguments: only the outcome column tells them apart.
        assert [re.split(" {2,}", line)[:3] for line in out.splitlines()] == [
            ["runs/a/model.bin", "train.py", "failed (2), attempt"],
            ["runs/a/model.bin", "train.py", "interrupted (130), attempt"],
            ["runs/a/model.bin", "train.py", "succeeded"],
            ["runs/a/model.bin", "train.py", "succeeded, attempt"],
        ]
        listed = json.loads(runs("runs/a", "--json")[1])["runs"]
        assert [r["record"].rpartition("/")[2] for r in listed] == [
            "model.bin.manifest.failed.json",
            "model.bin.manifest.interrupted.json",
            "model.bin.manifest.json",
            "model.bin.manifest.succeeded.json",
        ]


class TestHostileRecords:
    def test_markup_controls_and_huge_values_stay_one_escaped_line(self, proj):
        hostile = {"name": "<b>x</b>\x1b[31m\nnext\u202e", "blob": "y" * 1_000_000}
        write(
            proj / "runs" / "x.manifest.json",
            run_doc("evil\n.py", hostile, gates={"g\x07ate": {"passed": True}}),
        )
        write(proj / "runs" / "y.manifest.json", run_doc("ok.py", {}))
        (proj / "runs" / "broken.manifest.json").write_text('{"schema": ')
        code, out, err = runs("runs")
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == 2
        assert "\x1b" not in out
        assert "\u202e" not in out
        assert "\x07" not in out
        assert "evil\\x0a.py" in lines[0]
        assert "g\\x07ate:pass" in lines[0]
        # Quoted, as JSON: a string holding an escape never reads as the escape's own text.
        assert 'name="<b>x</b>\\u001b[31m\\nnext\\u202e"' in lines[0]
        assert len(lines[0]) < 400
        assert err.count("\n") == 1
        assert "skipped" in err
        assert "broken.manifest.json" in err
        _, as_json, _ = runs("runs", "--json")
        [run] = [r for r in json.loads(as_json)["runs"] if r["script"] == "evil\n.py"]
        assert run["params"]["args.blob"] == "y" * 1_000_000


class TestFindRuns:
    def test_the_api_filters_as_the_command_does(self, proj):
        sweep(proj)
        found = provenance.find_runs(["runs"], where={"lr": 0.01}, gate={"plcc": True})
        assert [(r.artifact, r.status, r.gates) for r in found] == [
            ("runs/a/model.bin", "succeeded", {"plcc": True})
        ]
        assert found[0].params == {"args.lr": 0.01, "args.seed": 1, "config.trainer.epochs": 5}
        assert provenance.find_runs(["runs"], status="failed", index=False)[0].exit_code == 1


_VALUES = (
    *(True, False, None, 0, 1, -1, 2**70, 0.0, -0.0, 1.0, 0.01, float("nan"), float("inf")),
    *("", "1", "true", "null", "0.01", "\ud800", "é"),
    *([], [1], (1,), [1.0], {}, {"a": 1}, {"a": 1.0}, {"b": [True]}),
)


class TestSameAsJson:
    def test_values_match_exactly_when_they_are_written_the_same_as_json(self):
        from provenance.record.summary import same

        for a in _VALUES:
            for b in _VALUES:
                written = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
                assert same(a, b) is written, (a, b)

    def test_a_filter_tells_true_from_1_and_1_from_1_0(self, proj):
        write(proj / "runs" / "t.bin.manifest.json", run_doc("t.py", {"flag": True, "n": 1}))
        write(proj / "runs" / "o.bin.manifest.json", run_doc("o.py", {"flag": 1, "n": 1.0}))
        where = provenance.find_runs
        assert [r.script for r in where(["runs"], where={"flag": True})] == ["t.py"]
        assert [r.script for r in where(["runs"], where={"flag": 1})] == ["o.py"]
        assert [r.script for r in where(["runs"], where={"n": 1})] == ["t.py"]
        assert [r.script for r in where(["runs"], where={"n": 1.0})] == ["o.py"]
        assert where(["runs"], where={"n": "1"}) == []


class TestFiltersBeforeSummaries:
    """``collect_runs`` filters what each record's summary says before it makes a run of it:
    the runs it keeps are those ``matches`` keeps, cold, warm, and without the index."""

    FILTERS: tuple[dict[str, Any], ...] = (
        {},
        {"where": {"lr": 0.01}},
        {"where": {"seed": 1, "trainer.epochs": 5}},
        {"where": {"config.trainer.epochs": 7}},
        {"where": {"lr": "0.01"}},
        {"gate": {"plcc": False}},
        {"status": "failed"},
        {"status": "lost"},
        {"script": "eval.py"},
        {"script": "train.py", "where": {"seed": 1}, "gate": {"plcc": True}},
    )

    def test_the_same_runs_as_filtering_them_all(self, proj, monkeypatch):
        from provenance.read import collect_runs, matches

        sweep(proj)
        lost = proj / "runs" / "d" / "model.bin.manifest.running.0000000a.json"
        write(lost, run_doc("train.py", {"seed": 3}, status="running", exit_code=None))
        failed = proj / "runs" / "a" / "model.bin.manifest.failed.json"
        write(failed, run_doc("train.py", {"lr": 3}, status="failed", exit_code=2))
        aged(proj)
        for call in ("cold", "warm", "off"):
            if call == "off":
                monkeypatch.setenv(ENVIRONMENT, "off")
            every = collect_runs(["runs"]).runs
            assert len(every) == 6
            for filters in self.FILTERS:
                kept = collect_runs(["runs"], **filters).runs
                assert kept == [r for r in every if matches(r, **filters)], (call, filters)
                assert kept == provenance.find_runs(["runs"], **filters)
        assert [r.status for r in collect_runs(["runs"], status="lost").runs] == ["lost"]

    def test_summaries_the_store_holds_merged_are_not_trusted(self, proj, tmp_path):
        sweep(proj)
        aged(proj)
        full = runs("runs", "--json")
        with sqlite3.connect(tmp_path / "cache" / FILE_NAME) as db:
            rows = db.execute("SELECT path, summary FROM runs ORDER BY path").fetchall()
            # Two folders' texts that, joined, make one summary: one run stands for two.
            (first, one), (second, _) = rows[0], rows[1]
            assert first.endswith(b"/a/model.bin.manifest.json"), first
            merged = one[:-1] + ',"more":[0'
            db.execute("UPDATE runs SET summary = ? WHERE path = ?", (merged, first))
            db.execute("UPDATE runs SET summary = ? WHERE path = ?", ("0]}", second))
        code, out, err = runs("runs", "--json")
        assert (code, out) == full[:2]
        assert "lineage index" in err.splitlines()[0]


class TestDiffering:
    def test_a_parameter_differs_exactly_when_its_values_are_written_differently(self):
        import enum

        from provenance.read import RunSummary, differing

        class Level(enum.IntEnum):
            ONE = 1

        class Name(str):
            pass

        values = (*_VALUES, Level.ONE, Name("1"), Name("é"))
        absent = object()
        for a in (*values, absent):
            for b in values:
                made = [
                    RunSummary(
                        "r", "a", "s.py", None, "succeeded", 0, {}, {} if v is absent else {"k": v}
                    )
                    for v in (a, b)
                ]
                written = a is not absent and json.dumps(a, sort_keys=True) == json.dumps(
                    b, sort_keys=True
                )
                assert differing(made) == ([] if written else ["k"]), (a, b)


def made(artifact: str, params: dict[str, Any], **fields: Any) -> provenance.RunSummary:
    """A run as ``find_runs`` gives it, made by hand for ``render``."""
    return provenance.RunSummary(
        fields.get("record", artifact + ".manifest.json"),
        artifact,
        fields.get("script", "t.py"),
        None,
        "succeeded",
        0,
        fields.get("gates", {}),
        params,
    )


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal, East Asian wide characters two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


class TestTheTable:
    def test_long_artifact_paths_are_shown_whole(self, proj):
        folder = "runs/exp/2024-06-01-resnet50-imagenet/sweep_lr/seed_0/ckpt"
        for n in (1, 2):
            write(proj / folder / f"epoch_{n}.json.manifest.json", run_doc("train.py", {}))
        write(proj / "runs" / ("z" * 200 + ".bin.manifest.json"), run_doc("train.py", {}))
        _, out, _ = runs("runs")
        assert [line.split()[0] for line in out.splitlines()] == [
            f"{folder}/epoch_1.json",
            f"{folder}/epoch_2.json",
            "runs/" + "z" * 200 + ".bin",
        ]

    def test_different_values_never_read_the_same(self):
        from provenance.commands.runs import render

        long = "/data/sweep/" + "x" * 200
        values = [
            *_VALUES,
            *("a b", "a b=c", "a", "b=c", "a\tb", "x\x1b", "x\\x1b", "\\x1b", "a…b", "…", " 1"),
            *('"1"', "0.01", "NaN", "\u200b", "\ufeff", "\ud800", "\\ud800", "x\U000e0001"),
            *(long + "1", long + "2", "1" + long, "2" + long, "y" * 1000, "y" * 1001),
            *(long[:100] + "1" + long[100:], long[:100] + "2" + long[100:], long + "…1"),
        ]
        distinct = {json.dumps(v, sort_keys=True): v for v in values}  # as differing tells
        table = [made(f"r{i:03}", {"k": v}) for i, v in enumerate(distinct.values())]
        table.append(made("r999", {"k": "a", "b": "c"}))  # not k="a b=c"
        cells = [line.split("  -  ", 1)[1] for line in render(table).splitlines()]
        assert len(set(cells)) == len(table), [c for c in cells if cells.count(c) > 1]
        # Cut where they are long: only as far as it takes to tell them apart.
        shown = dict(zip(distinct, cells, strict=False))
        assert len(shown[json.dumps(long + "1")]) < 80
        assert len(shown[json.dumps("1" + long)]) < 80
        assert 0 < len(shown[json.dumps(long[:100] + "1" + long[100:])]) - 100 < 40

    def test_gate_names_and_scripts_are_told_apart_too(self):
        from provenance.commands.runs import render

        long = "g" * 100
        table = [
            made("a", {}, gates={long + "1": True}, script="s/" + long + "1.py"),
            made("b", {}, gates={long + "2": True}, script="s/" + long + "2.py"),
        ]
        first, second = render(table).splitlines()
        assert first[2:] != second[2:]
        assert len(first.split()[1]) < 80

    def test_columns_line_up_as_printed_escapes_and_wide_characters_included(self, proj):
        names = ["plain", "bidi\u202e", "bytes\udcff", "模型", "zw\u200b"]
        for name in names:
            write(proj / "runs" / (name + ".bin.manifest.json"), run_doc("train.py", {}))
        code, out, _ = runs("runs")
        assert code == 0
        lines = out.splitlines()
        assert len(lines) == len(names)
        starts = {width(line[: line.index("  train.py")]) for line in lines}
        assert len(starts) == 1, lines
        assert "runs/bytes\\udcff.bin" in out
        assert "runs/bidi\\u202e.bin" in out


# What a terminal shows as nothing, or as something else: format characters (Cf), other
# default-ignorable code points, variation selectors.
HIDDEN = (
    *("\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u2064", "\u206a", "\ufeff", "\u00ad"),
    *("\u180e", "\u3164", "\uffa0", "\u115f", "\u034f", "\u061c", "\u0600", "\u17b4", "\ufe0f"),
    *("\ufe00", "\U000e0001", "\U000e0041", "\U000e007f", "\U000e0100", "\U0001d173"),
    *("\U0001bca0", "\ufff9"),
)


class TestHiddenCharacters:
    def test_every_command_shows_them_as_escapes(self, proj):
        for i, char in enumerate(HIDDEN):
            write(
                proj / "runs" / f"m{i:02}{char}.bin.manifest.json",
                run_doc(
                    f"train{char}.py", {"note": f"a{char}b"}, gates={f"g{char}": {"passed": True}}
                ),
            )
        outputs = {"runs": runs("runs")[1], "runs --json": runs("runs", "--json")[1]}
        for i, char in enumerate(HIDDEN):
            artifact = f"runs/m{i:02}{char}.bin"
            outputs[f"show {i}"] = run_cli("show", artifact).out
            outputs[f"show --json {i}"] = run_cli("show", "--json", artifact).out
            outputs[f"lineage {i}"] = run_cli("lineage", artifact).out
        for i, char in enumerate(HIDDEN):
            for command, out in outputs.items():
                assert char not in out, (command, hex(ord(char)))
            code = ord(char)
            escape = (
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
            assert f"m{i:02}{escape}.bin" in outputs["runs"]
            assert f"train{escape}.py" in outputs["runs"]
            assert f"m{i:02}{escape}.bin" in outputs[f"show {i}"]
            assert f"m{i:02}{escape}.bin" in outputs[f"lineage {i}"]
        listed = json.loads(outputs["runs --json"])["runs"]
        assert sorted(r["script"] for r in listed) == sorted(f"train{c}.py" for c in HIDDEN)

    def test_printable_escapes_every_format_and_ignorable_character(self):
        from provenance.text import json_for_terminal, printable, shell_quote

        ignorable = [
            *range(0x180B, 0x1810),
            *range(0x2060, 0x2070),
            *range(0xFE00, 0xFE10),
            *range(0xFFF0, 0xFFF9),
            *range(0xE0000, 0xE1000),
            *(0xAD, 0x34F, 0x61C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFEFF, 0xFFA0),
        ]
        every = [
            chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cf", "Cc")
        ] + [chr(c) for c in ignorable]
        for char in every:
            assert char not in printable(f"a{char}b"), hex(ord(char))
            text = json_for_terminal(json.dumps(char, ensure_ascii=False))
            assert char not in text, hex(ord(char))
            assert json.loads(text) == char
            assert char not in shell_quote(f"a{char}b"), hex(ord(char))
        assert printable("é 模型 😀 \u0301") == "é 模型 😀 \u0301"  # what shows is left alone


class TestOneRecordOneLine:
    """Two paths to one record list it once: under the one that is not a link."""

    def records(self, proj: Path) -> Path:
        ok = proj / "runs" / "ok"
        write(ok / "model.json", {"weights": []})
        write(ok / "model.json.manifest.json", run_doc("train.py", {"lr": 1}))
        write(
            ok / "model.json.manifest.failed.json", run_doc("train.py", {"lr": 2}, status="failed")
        )
        write(proj / "runs" / "other" / "b.bin.manifest.json", run_doc("train.py", {"lr": 3}))
        return ok

    def listed(self, *paths: object) -> list[str]:
        code, out, err = runs(*paths, "--json")
        assert code == 0, err
        texts = {out}
        with pytest.MonkeyPatch.context() as patch:  # the same bytes without the index
            patch.setenv(ENVIRONMENT, "off")
            texts.add(runs(*paths, "--json")[1])
        assert len(texts) == 1
        return [r["record"] for r in json.loads(out)["runs"]]

    def test_a_folder_and_what_it_holds(self, proj):
        ok = self.records(proj)
        every = [
            "runs/ok/model.json.manifest.failed.json",
            "runs/ok/model.json.manifest.json",
        ]
        aged(proj)
        for given in (
            ["runs/ok", "runs/ok/model.json"],
            ["runs/ok/model.json", "runs/ok"],
            ["runs/ok", "runs/ok/model.json.manifest.json"],
            ["runs/ok", "runs/ok/model.json", "runs/ok/model.json"],
            ["runs/ok", "runs/ok/model.json.manifest.failed.json"],
            ["runs/ok", str(ok / "model.json"), "./runs/ok/model.json"],
        ):
            listed = self.listed(*given)
            assert len(listed) == 2, (given, listed)
            assert {Path(r).name for r in listed} == {Path(r).name for r in every}
        twice = "runs/ok/model.json.manifest.failed.json"
        assert self.listed(twice, twice) == [twice]
        assert self.listed("runs/ok", "runs/ok/model.json") == every
        assert self.listed("runs", "runs/ok/model.json", "runs/ok") == [
            *every,
            "runs/other/b.bin.manifest.json",
        ]

    def test_a_link_to_a_record_found_anyway_is_not_listed_again(self, proj):
        ok = self.records(proj)
        (ok / "aaa.manifest.json").symlink_to("model.json.manifest.json")
        (ok / "zzz.manifest.json").symlink_to("../other/b.bin.manifest.json")
        (ok / "side.manifest.failed.json").symlink_to("model.json.manifest.failed.json")
        aged(proj)
        assert self.listed("runs") == [
            "runs/ok/model.json.manifest.failed.json",
            "runs/ok/model.json.manifest.json",
            "runs/other/b.bin.manifest.json",
        ]
        # Where what it leads to is not searched for, the link is how the record is found.
        assert self.listed("runs/ok", "runs/other/b.bin.manifest.json") == [
            "runs/ok/model.json.manifest.failed.json",
            "runs/ok/model.json.manifest.json",
            "runs/other/b.bin.manifest.json",
        ]
        (proj / "runs" / "other" / "b.bin.manifest.json").unlink()
        (proj / "elsewhere").mkdir()
        write(proj / "elsewhere" / "b.bin.manifest.json", run_doc("train.py", {"lr": 3}))
        (ok / "zzz.manifest.json").unlink()
        (ok / "zzz.manifest.json").symlink_to("../../runs/other/c.bin.manifest.json")
        code, _, err = runs("runs")
        assert code == 0
        assert "zzz.manifest.json: a link to nothing" in err

    def test_the_choice_of_path(self):
        from provenance.read import one_path_each

        found = [
            ("b/link.manifest.json", b"/r/a/m.manifest.json", True),
            ("a/m.manifest.json", b"/r/a/m.manifest.json", False),
            ("z/only-link.manifest.json", b"/r/q.manifest.json", True),
            ("y/only-link.manifest.json", b"/r/q.manifest.json", True),
        ]
        for order in (found, found[::-1]):
            assert one_path_each(order) == {
                b"/r/a/m.manifest.json": "a/m.manifest.json",
                b"/r/q.manifest.json": "y/only-link.manifest.json",
            }
        as_text = [(shown, real.decode(), link) for shown, real, link in found]
        assert one_path_each(as_text) == {
            "/r/a/m.manifest.json": "a/m.manifest.json",
            "/r/q.manifest.json": "y/only-link.manifest.json",
        }


class TestSkippedLinks:
    def test_a_link_named_itself_is_listed_and_not_said_skipped(self, proj, tmp_path):
        write(proj / "runs" / "ok" / "x.manifest.json", run_doc("train.py", {}))
        write(tmp_path / "outside" / "o.manifest.json", run_doc("other.py", {}))
        link = proj / "runs" / "ok" / "ext.manifest.json"
        link.symlink_to(tmp_path / "outside" / "o.manifest.json")
        aged(proj)
        for given in (["runs", "runs/ok/ext.manifest.json"], ["runs/ok/ext.manifest.json", "runs"]):
            code, out, err = runs(*given)
            assert code == 0
            assert [line.split()[:2] for line in out.splitlines()] == [
                ["runs/ok/ext", "other.py"],
                ["runs/ok/x", "train.py"],
            ]
            assert err == "", given

    def test_a_folder_given_also_through_a_link_lists_its_runs_by_its_own_path(self, proj):
        write(proj / "runs" / "ok" / "x.manifest.json", run_doc("train.py", {}))
        (proj / "linked").symlink_to("runs")
        aged(proj)
        for given in (["linked", "runs"], ["runs", "linked"]):
            code, out, err = runs(*given)
            assert (code, err) == (0, "")
            assert [line.split()[0] for line in out.splitlines()] == ["runs/ok/x"], given

    def test_each_link_not_followed_is_a_line_on_stderr(self, proj, tmp_path):
        write(proj / "runs" / "ok" / "x.manifest.json", run_doc("train.py", {}))
        write(tmp_path / "outside" / "o.manifest.json", run_doc("train.py", {}))
        ok = proj / "runs" / "ok"
        (ok / "y.manifest.json").symlink_to(tmp_path / "outside" / "o.manifest.json")
        (ok / "z.manifest.json").symlink_to(ok / "gone.manifest.json")
        (ok / "loop.manifest.json").symlink_to("loop.manifest.json")
        (ok / "w.manifest.failed.json").symlink_to(tmp_path / "outside" / "o.manifest.json")
        aged(proj)
        for index in ("on", "off"):
            with pytest.MonkeyPatch.context() as patch:
                if index == "off":
                    patch.setenv(ENVIRONMENT, "off")
                code, out, err = runs("runs")
            assert code == 0
            assert out.split()[0] == "runs/ok/x"
            assert len(out.splitlines()) == 1
            assert err.splitlines() == [
                "provenance: skipped runs/ok/loop.manifest.json: a link to nothing",
                "provenance: skipped runs/ok/y.manifest.json: "
                "a link to outside the searched folders",
                "provenance: skipped runs/ok/z.manifest.json: a link to nothing",
                "provenance: skipped runs/ok/w.manifest.failed.json: "
                "a link to outside the searched folders",
            ], index
        # Searched, what it leads to is read through it.
        code, out, err = runs("runs", tmp_path / "outside")
        assert code == 0
        assert "runs/ok/y" not in out  # listed under its own path, not the link's
        assert f"{tmp_path}/outside/o  " in out
        assert "y.manifest.json: a link" not in err
