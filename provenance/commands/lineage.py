"""``provenance lineage FILE``: from an artifact back through the runs that made its inputs.

An input leads to the run whose record lists an output with the same digest (never merely the
same path) that the run wrote; an input inside a folder some run wrote leads to that run, marked
"part of". An input that no record accounts for is a raw input, where the walk stops.

Records are read from the project root and the --search folders, and beside inputs there;
nothing outside them unless --outside-root asks. A record that cannot be read is skipped, with
a line on stderr. The walk stops after --max-depth runs and says so (exit 1).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    add_command,
    add_outside_root,
    declared_entries,
    lines_text,
    print_json,
    short,
    warn,
)
from provenance.records import Boundary, Place, Record, UnreadableRecord, load
from provenance.sidecar import SIDECAR_SUFFIX, sidecar_path_for

_MAX_FOLDER_DEPTH = 64  # how far up from an input to look for a folder a run wrote
# Runs followed from the artifact: pipelines are a few deep; JSON of a much deeper tree would
# nest past what Python's encoder (and most readers) take.
DEFAULT_MAX_DEPTH, MAX_DEPTH = 100, 250
SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
    }
)


def register(commands: Any) -> None:
    parser = add_command(commands, "lineage", "trace a file back to its raw inputs", __doc__, run)
    parser.add_argument("file", help="an artifact or its sidecar")
    parser.add_argument(
        "--search",
        action="append",
        default=[],
        metavar="DIR",
        help="where to look for records (repeatable; default: the project root)",
    )
    parser.add_argument(
        "--max-depth",
        type=_depth,
        default=DEFAULT_MAX_DEPTH,
        help=f"runs to follow back from the artifact (default {DEFAULT_MAX_DEPTH}, at most "
        f"{MAX_DEPTH})",
    )
    add_outside_root(parser)
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--dot", action="store_true", help="print a Graphviz digraph")
    output.add_argument("--json", action="store_true", help="print the tree as JSON")


def _depth(text: str) -> int:
    depth = int(text)
    if not 0 <= depth <= MAX_DEPTH:
        raise argparse.ArgumentTypeError(f"between 0 and {MAX_DEPTH}, not {depth}")
    return depth


@dataclass
class Producer:
    record: Record
    source: str  # the record's real path
    output: str  # the output's name in its record
    shown: str  # its path as the record shows it
    path: Path | None  # where it is (symlinks resolved inside the boundary), if usable


@dataclass
class Index:
    """Every readable record under the search folders, by output digest and by output folder."""

    boundary: Boundary
    root: str | None = None
    by_digest: dict[str, list[Producer]] = field(default_factory=dict)
    folders: list[Producer] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    _indexed: set[str] = field(default_factory=set)
    _looked_at: set[Path] = field(default_factory=set)

    def add(self, record: Record) -> None:
        source = os.path.realpath(record.source)
        if source in self._indexed:
            return
        self._indexed.add(source)
        for name, entry in declared_entries(record.block["outputs"]):
            if not isinstance(entry, dict) or not entry.get("exists"):
                continue
            if entry.get("written_by_run") is False:
                continue  # the run left it as it found it: it did not produce it
            place = record.place(entry["path"], self.boundary)
            producer = Producer(record, source, name, entry["path"], _where(place))
            if entry.get("blake3"):
                self.by_digest.setdefault(entry["blake3"], []).append(producer)
            if entry.get("kind") == "directory" and producer.path is not None:
                self.folders.append(producer)

    def producer_of(
        self, entry: dict[str, Any], place: Place, exclude: str
    ) -> tuple[str, Producer] | None:
        """The run that wrote this input: first the record beside it (if its output has the
        same digest), then any indexed record with that digest, then a run that wrote a folder
        holding it (beside that folder, or indexed)."""
        if place.path is not None:
            self._add_beside(place.path)
        for producer in self.by_digest.get(entry.get("blake3") or "", []):
            if producer.source != exclude:
                return "digest", producer
        path = _where(place)
        if path is None:
            return None
        if place.path is not None:
            for folder in list(path.parents)[:_MAX_FOLDER_DEPTH]:
                if folder.name:  # the filesystem's root has no sidecar beside it
                    self._add_beside(folder)
        for producer in self.folders:
            assert producer.path is not None  # only producers with a usable path are folders
            if producer.source != exclude and path.is_relative_to(producer.path):
                return "part of", producer
        return None

    def _add_beside(self, path: Path) -> None:
        """Index the record kept beside ``path``, if there is a readable one inside the
        boundary."""
        sidecar = sidecar_path_for(path)
        if sidecar in self._looked_at:
            return
        self._looked_at.add(sidecar)
        if self.boundary.admits(os.path.realpath(sidecar)) and sidecar.is_file():
            self.load(sidecar)

    def load(self, path: Path) -> None:
        try:
            self.add(load(path, self.root))
        except UnreadableRecord as err:
            self.unreadable.append(str(err))


def _where(place: Place) -> Path | None:
    return place.path if place.path is not None else place.written


def records_under(folders: list[Path], boundary: Boundary) -> list[Path]:
    found = []
    for top in folders:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
            for name in sorted(files):
                path = Path(folder) / name
                if name.endswith(SIDECAR_SUFFIX) and boundary.admits(os.path.realpath(path)):
                    found.append(path)
    return found


def build_index(folders: list[Path], root: str | None, boundary: Boundary) -> Index:
    index = Index(boundary, root)
    for path in records_under(folders, boundary):
        index.load(path)
    return index


@dataclass
class Walk:
    """One tracing of the tree: the runs already shown, and how deep it may go."""

    index: Index
    max_depth: int
    seen: set[str] = field(default_factory=set)
    cut_short: bool = False
    # Each run shown, by its node's "record", in the order first met: for callers that need
    # more of a record than the tree keeps (a model card's gates and digests).
    records: dict[str, Record] = field(default_factory=dict)


def trace(record: Record, walk: Walk, depth: int = 0) -> dict[str, Any]:
    """The tree of ``record``'s inputs, each followed to the run that produced it."""
    source = os.path.realpath(record.source)
    node: dict[str, Any] = {
        "record": _shown(record.source),
        "entrypoint": record.block["entrypoint"]["path"],
        "status": (record.block.get("outcome") or {}).get("status"),
        "inputs": [],
    }
    if source in walk.seen:
        node["repeated"] = any(True for _ in declared_entries(record.block["inputs"]))
        return node
    walk.seen.add(source)
    walk.records.setdefault(node["record"], record)
    for name, entry in declared_entries(record.block["inputs"]):
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        place = record.place(entry["path"], walk.index.boundary)
        item: dict[str, Any] = {"name": name, "path": entry["path"], "blake3": entry.get("blake3")}
        found = walk.index.producer_of(entry, place, source) if entry.get("exists") else None
        if found is None:
            item["raw"] = True
        elif depth >= walk.max_depth:
            item["truncated"] = True
            walk.cut_short = True
        else:
            how, producer = found
            item["link"] = how
            item["via"] = producer.shown
            item["produced_by"] = trace(producer.record, walk, depth + 1)
        node["inputs"].append(item)
    return node


def _shown(path: Path) -> str:
    """A record's path as a user would type it: relative to the working folder when under it."""
    absolute = Path(os.path.realpath(path))
    try:
        return str(absolute.relative_to(os.path.realpath(Path.cwd())))
    except ValueError:
        return str(absolute)


def render_tree(artifact: str, node: dict[str, Any]) -> str:
    lines = [f"{artifact}  <- {node['entrypoint']} [{node['status']}]"]

    def walk(node: dict[str, Any], prefix: str) -> None:
        inputs = node["inputs"]
        for i, item in enumerate(inputs):
            last = i == len(inputs) - 1
            branch, carry = ("└─ ", "   ") if last else ("├─ ", "│  ")
            head = f"{prefix}{branch}{item['name']} {item['path']}"
            if item.get("raw"):
                lines.append(f"{head}  (raw input, blake3 {short(item.get('blake3'))})")
                continue
            if item.get("truncated"):
                lines.append(f"{head}  (made by a run deeper than --max-depth: not followed)")
                continue
            producer = item["produced_by"]
            via = f", part of {item['via']}" if item["link"] == "part of" else ""
            more = "  (see above)" if producer.get("repeated") else ""
            lines.append(f"{head}  <- {producer['entrypoint']} [{producer['status']}]{via}{more}")
            if not producer.get("repeated"):
                walk(producer, prefix + carry)

    walk(node, "")
    return lines_text(lines)


def _dot(text: object) -> str:
    """``text`` inside a Graphviz double-quoted string."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def render_dot(artifact: str, node: dict[str, Any]) -> str:
    edges: list[str] = []
    nodes: dict[str, str] = {}

    def file_node(path: str) -> str:
        key = _dot(f"f:{path}")
        nodes.setdefault(key, f'"{key}" [shape=note, label="{_dot(path)}"];')
        return key

    def run_node(tree: dict[str, Any]) -> str:
        key = _dot(f"r:{tree['record']}")
        label = f"{_dot(tree['entrypoint'])}\\n{_dot(tree['status'])}"
        nodes.setdefault(key, f'"{key}" [shape=box, style=rounded, label="{label}"];')
        return key

    def walk(tree: dict[str, Any], output: str) -> None:
        run = run_node(tree)
        edges.append(f'"{run}" -> "{file_node(output)}";')
        if tree.get("repeated"):
            return
        for item in tree["inputs"]:
            source = file_node(item["path"])
            edges.append(f'"{source}" -> "{run}" [label="{_dot(item["name"])}"];')
            if not item.get("raw") and not item.get("truncated"):
                walk(item["produced_by"], item["path"] if item["link"] == "digest" else item["via"])

    walk(node, artifact)
    body = ["digraph lineage {", "  rankdir=RL;"]
    body += [f"  {line}" for line in [*nodes.values(), *dict.fromkeys(edges)]]
    return lines_text([*body, "}"])


def index_for(
    record: Record, search: list[str], root: str | None, *, outside_root: bool = False
) -> Index:
    """The records ``record``'s lineage is traced through: those under ``search`` (by default,
    the project the record is in; records beside each input are found anyway), and itself."""
    source = os.path.realpath(record.source)
    within_root = record.root is not None and record.boundary().admits(source)
    default = record.root if within_root and record.root is not None else record.source.parent
    folders = [Path(d) for d in search] or [default]
    boundary = record.boundary(outside_root=outside_root).widened(folders)
    index = build_index(folders, root, boundary)
    index.add(record)
    return index


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    index = index_for(record, args.search, args.root, outside_root=args.outside_root)
    outputs = [e for _, e in declared_entries(record.block["outputs"]) if isinstance(e, dict)]
    given = Path(args.file)
    artifact = str(given) if record.source != given or not outputs else outputs[0]["path"]
    walk = Walk(index, args.max_depth)
    tree = trace(record, walk)
    if args.json:
        print_json({"artifact": artifact, **tree})
    elif args.dot:
        print(render_dot(artifact, tree))
    else:
        print(render_tree(artifact, tree))
    for problem in index.unreadable:
        warn(f"skipped {problem}")
    if walk.cut_short:
        warn(f"the lineage goes deeper than {args.max_depth} runs; --max-depth follows more")
        return EXIT_FINDING
    return EXIT_OK
