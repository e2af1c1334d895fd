"""Every command over mutated records: exit 0, 1 or 2, never a traceback, one line when it refuses.

Real sidecars (fakes run as subprocesses in a small project) are mutated with a seeded random:
values deleted or replaced by huge integers, NaN, infinities, deep nesting, lone surrogates,
NUL bytes, control characters, wrong types and hostile paths (outside the root, symlink loops,
devices, interpreter options); the text gets duplicate keys, bytes that are not UTF-8, other
encodings, or is cut short. The files themselves may be FIFOs, folders, symlink loops or have
names that are not UTF-8. Commands run in-process on strict stdio (UTF-8, and ASCII as under a C
locale); a few run as subprocesses.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
from pathlib import Path

import pytest

from provenance.measure.hashing import HashPolicy, describe_path
from tests.handmade import cli_in, copy_fake, document, project, run_cli, run_in, write

SEED = 20261201
CASES = 50
HUGE_INT, NAN, INFINITY, DEEP, DEEPER = (
    "__HUGE_INT__",
    "__NAN__",
    "__INFINITY__",
    "__DEEP__",
    "__DEEPER__",
)
MARKERS = {
    f'"{HUGE_INT}"': "9" * 5000,
    f'"{NAN}"': "NaN",
    f'"{INFINITY}"': "1e999",
    f'"{DEEP}"': "[" * 90 + "]" * 90,  # deep, still within what a reader takes
    f'"{DEEPER}"': "[" * 50_000 + "]" * 50_000,
}
PATHS = [
    "../../etc/passwd",
    "/etc/passwd",
    "/",
    "/dev/zero",
    "loop1/x",
    "loop1",
    "link-out",
    "-c",
    "-mpwn",
    "",
    ".",
    "a\u0000b",
    "lone\ud800",
    "caf\udce9",
    "x" * 5000,
    "\x1b[2J\n  unchanged output forged",
]
VALUES = [
    HUGE_INT,
    NAN,
    INFINITY,
    DEEP,
    DEEPER,
    2**70,
    -1,
    0,
    1.5,
    True,
    None,
    "",
    [],
    {},
    {"path": "x"},
    ["x", 1, None],
    "\ud800",
    "\u202e\u2066",
    "x" * 100_000,
    *PATHS,
]
# Each command in the forms the fuzz runs it, one form per record in turn; R is the mutated
# record, A an original (whose lineage passes the mutated record on the way).
COMMANDS = [
    [["show", "R"], ["show", "--json", "--check-outcome", "R"]],
    [["verify", "R"], ["verify", "--json", "--outside-root", "R"]],
    [["diff", "R", "A"], ["diff", "--json", "A", "R"]],
    [["lineage", "R"], ["lineage", "--json", "R"], ["lineage", "--dot", "R"], ["lineage", "A"]],
    [["replay", "R"], ["replay", "--json", "R"]],
    [["validate", "R"]],
    [
        ["export", "--format", "slsa", "R"],
        ["export", "--format", "openlineage", "--event-time", "2026-01-01T00:00:00Z", "R"],
        ["export", "--format", "slsa", "--out", "OUT", "R"],
    ],
]


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A project with real sidecars of three fakes, a folder output, and hostile neighbours."""
    root = project(tmp_path_factory.mktemp("fuzz") / "proj")
    for name in ("table_builder", "trainer", "outcomes"):
        copy_fake(name, root)
    (root / "s.csv").write_text("name,value\nb,2\na,1\n")
    (root / "f.csv").write_text("adm2\n0.9\n")
    runs = [
        ("table_builder.py", "s.csv", "--out", "t.tsv"),
        ("trainer.py", "--features", "f.csv", "--out-json", "m.json", "--plcc", "0.5"),
        ("outcomes.py", "--mode", "raise", "--out", "o.txt"),
    ]
    for argv in runs:
        assert run_in(root, *argv).returncode in (0, 1)
    (root / "data").mkdir()
    (root / "data/a.txt").write_text("a")
    folder = describe_path(str(root / "data"), "data", HashPolicy())
    write(root / "data.manifest.json", document("table_builder.py", outputs={"data": folder}))
    os.symlink(root / "loop2", root / "loop1")
    os.symlink(root / "loop1", root / "loop2")
    (root.parent / "outside.txt").write_text("outside\n")
    os.symlink(root.parent / "outside.txt", root / "link-out")
    sidecars = [root / "t.tsv.manifest.json", root / "m.json.manifest.json"]
    sidecars += [root / "o.txt.manifest.json", root / "data.manifest.json"]
    return root, [json.loads(p.read_text()) for p in sidecars], sidecars


def _nodes(document):
    """Every (container, key) in ``document``, found without recursion."""
    found, stack = [], [document]
    while stack:
        value = stack.pop()
        keys = list(value) if isinstance(value, dict) else range(len(value))
        for key in keys:
            found.append((value, key))
            if isinstance(value[key], (dict, list)):
                stack.append(value[key])
    return found


# Strings the schema pins down (constants, enums, digests): changing them only makes a record
# invalid, which the random replacements already do often enough.
PINNED = re.compile(
    r"[0-9a-f]{64}|provenance\..*|blake3|sha256|file|directory|other|succeeded|failed"
)
TABLES = ("code", "args", "inputs", "outputs", "gates")


def _mutate_once(rng: random.Random, doc: dict) -> None:
    nodes = _nodes(doc)
    strings = [(c, k) for c, k in nodes if isinstance(c[k], str) and not PINNED.fullmatch(c[k])]
    numbers = [(c, k) for c, k in nodes if type(c[k]) is int]
    tables = [c[k] for c, k in nodes if k in TABLES and isinstance(c[k], dict) and c[k]]
    how = rng.random()
    if how < 0.35 and strings:  # mostly still a valid record, now naming something hostile
        container, key = rng.choice(strings)
        container[key] = rng.choice([*PATHS, *(v for v in VALUES if isinstance(v, str))])
    elif how < 0.5 and tables:  # a hostile name: a code path, an argument, a gate
        table = rng.choice(tables)
        old = rng.choice(list(table))
        table[rng.choice(PATHS) or "empty"] = table.pop(old)
    elif how < 0.6 and numbers:
        container, key = rng.choice(numbers)
        container[key] = rng.choice([2**62, 10**40, 0, -1, HUGE_INT])
    elif how < 0.65 and tables:  # many entries
        table = rng.choice(tables)
        name, value = rng.choice(list(table.items()))
        table.update({f"{name}{i}": copy.deepcopy(value) for i in range(100)})
    elif how < 0.75:
        container, key = rng.choice(nodes)
        del container[key]
    else:
        container, key = rng.choice(nodes)
        container[key] = copy.deepcopy(rng.choice(VALUES))


def mutated(rng: random.Random, original: dict) -> bytes:
    doc = copy.deepcopy(original)
    for _ in range(rng.choice([1, 1, 2, 3])):
        _mutate_once(rng, doc)
    text = json.dumps(doc, indent=rng.choice([None, 2]), ensure_ascii=True)
    for marker, raw in MARKERS.items():
        text = text.replace(marker, raw)
    data = text.encode("ascii")
    damage = rng.random()
    if damage < 0.08:
        at = rng.randrange(len(data))
        data = data[:at]
    elif damage < 0.14:
        at = data.find(b'{"', rng.randrange(len(data) // 2 + 1))
        if at >= 0:
            data = data[: at + 1] + b'"dup": 0, "dup": 1, ' + data[at + 1 :]
    elif damage < 0.18:
        at = rng.randrange(len(data))
        data = data[:at] + b"\xff\xc0" + data[at:]
    elif damage < 0.21:
        data = text.encode("utf-16")
    return data


def check(result, argv):
    assert result.code in (0, 1, 2), (argv, result)
    assert "Traceback" not in result.err, (argv, result.err)
    assert "internal error" not in result.err, (argv, result.err)
    assert "\x1b" not in result.out + result.err, argv
    if result.code == 2:
        lines = result.err.strip().splitlines()
        assert len(lines) == 1, (argv, result.err)
        assert lines[0].startswith("provenance: "), (argv, result.err)
    elif "--json" in argv:
        json.loads(result.out)


def run_all(record: Path, original: Path, out: Path, encoding: str, turn: int | None) -> None:
    """Every command on ``record``: in its ``turn``-th form, or in every form (None)."""
    given = {"R": record, "A": original, "OUT": out}
    for forms in COMMANDS:
        for command in forms if turn is None else [forms[turn % len(forms)]]:
            argv = [given.get(word, word) for word in command]
            check(run_cli(*argv, encoding=encoding, guard=60), argv)


def test_every_command_survives_mutated_records(originals):
    root, documents, sidecars = originals
    rng = random.Random(SEED)
    record = root / "cases" / "x.bin.manifest.json"  # one at a time: each lineage reads it
    record.parent.mkdir()
    for case in range(CASES):
        which = rng.randrange(len(documents))
        record.write_bytes(mutated(rng, documents[which]))
        encoding = "ascii" if case % 3 == 0 else "utf-8"
        run_all(record, sidecars[which], record.parent / "out.json", encoding, case)


def test_every_command_survives_hostile_record_files(originals, tmp_path):
    root, documents, sidecars = originals
    folder = root / "files"
    folder.mkdir()
    odd = folder / os.fsdecode(b"\xe9t\xe9.bin.manifest.json")
    odd.write_text(json.dumps(documents[0]))
    fifo = folder / "fifo.bin.manifest.json"
    os.mkfifo(fifo)
    loop = folder / "loop.bin.manifest.json"
    os.symlink(loop, loop)
    (folder / "dir.bin.manifest.json").mkdir()
    (folder / "empty.bin.manifest.json").write_bytes(b"")
    (folder / "forged\n  unchanged\x1b[2J.bin.manifest.json").write_text("{")
    with open(folder / "huge.bin.manifest.json", "wb") as handle:
        handle.truncate(65 * 1024**2)  # sparse: over the limit without the disk space
    for i, record in enumerate(sorted(folder.iterdir())):
        encoding = ("utf-8", "ascii")[i % 2]
        run_all(record, sidecars[0], tmp_path / "out.json", encoding, None)


@pytest.mark.parametrize(
    ("env", "commands"),
    [
        ({"PYTHONIOENCODING": "utf-8:strict"}, ["show", "lineage"]),
        ({"LC_ALL": "C", "PYTHONIOENCODING": ""}, ["verify", "diff"]),
    ],
    ids=["strict-utf8", "c-locale"],
)
def test_a_few_as_subprocesses(originals, env, commands):
    root, documents, _ = originals
    doc = copy.deepcopy(documents[0])
    block = doc["run_provenance"]
    block["inputs"]["shards"][0]["path"] = "caf\udce9\x1b[2J"
    block["argv"] = ["lone\ud800"]
    record = write(root / "sub" / os.fsdecode(b"n\xe4me.bin.manifest.json"), doc)
    for command in commands:
        argv = [command, record, record] if command == "diff" else [command, record]
        proc = cli_in(root, *argv, env=env)
        assert proc.returncode in (0, 1), (argv, proc.stderr)
        assert "Traceback" not in proc.stderr, (argv, proc.stderr)
        assert "\x1b" not in proc.stdout, argv


def test_the_compiled_schema_judges_mutated_records_as_jsonschema_does(originals):
    """The generated validator and jsonschema agree on every mutated record the reader takes."""
    import jsonschema

    from provenance import load_schema
    from provenance.record.limits import strict_loads, unreadable
    from provenance.record.schema import _compiled

    _, documents, _ = originals
    reference = jsonschema.Draft202012Validator(load_schema())
    compiled = _compiled()
    assert compiled is not None
    rng = random.Random(SEED + 1)
    judged = {True: 0, False: 0}
    for _ in range(400):
        data = mutated(rng, documents[rng.randrange(len(documents))])
        if unreadable(data) is not None:
            continue
        doc = strict_loads(data.decode("utf-8"))
        valid = reference.is_valid(doc)
        assert compiled(doc) == valid, next(reference.iter_errors(doc), None)
        judged[valid] += 1
    assert judged[True] > 20, judged
    assert judged[False] > 20, judged
