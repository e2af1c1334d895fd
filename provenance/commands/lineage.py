"""``provenance lineage FILE``: from an artifact back through the runs that made its inputs.

An input leads to the run whose record lists an output with the same digest (never merely the
same path); an input inside a folder some run wrote leads to that run, marked "part of". An
input that no record accounts for is a raw input, where the walk stops.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.commands import EXIT_OK, add_command, declared_entries, print_json, short
from provenance.records import Record, UnreadableRecord, load
from provenance.sidecar import SIDECAR_SUFFIX, sidecar_path_for

_MAX_FOLDER_DEPTH = 64  # how far up from an input to look for a folder a run wrote
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
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--dot", action="store_true", help="print a Graphviz digraph")
    output.add_argument("--json", action="store_true", help="print the tree as JSON")


@dataclass
class Producer:
    record: Record
    output: str  # the output's name in its record
    shown: str  # its path as the record shows it
    path: Path  # where it is, resolved


@dataclass
class Index:
    """Every readable record under the search folders, by output digest and by output folder."""

    by_digest: dict[str, list[Producer]] = field(default_factory=dict)
    folders: list[Producer] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    _indexed: set[Path] = field(default_factory=set)
    _looked_at: set[Path] = field(default_factory=set)

    def add(self, record: Record) -> None:
        source = record.source.resolve()
        if source in self._indexed:
            return
        self._indexed.add(source)
        for name, entry in declared_entries(record.block["outputs"]):
            if not isinstance(entry, dict) or not entry.get("exists"):
                continue
            resolved = record.resolve(entry["path"]).resolve()
            producer = Producer(record, name, entry["path"], resolved)
            if entry.get("blake3"):
                self.by_digest.setdefault(entry["blake3"], []).append(producer)
            if entry.get("kind") == "directory":
                self.folders.append(producer)

    def producer_of(
        self, entry: dict[str, Any], path: Path, exclude: Path
    ) -> tuple[str, Producer] | None:
        """The run that wrote this input: first the record beside it (if its output has the
        same digest), then any indexed record with that digest, then a run that wrote a folder
        holding it (beside that folder, or indexed)."""
        self._add_beside(path)
        for producer in self.by_digest.get(entry.get("blake3") or "", []):
            if producer.record.source.resolve() != exclude:
                return "digest", producer
        for folder in list(path.parents)[:_MAX_FOLDER_DEPTH]:
            if folder.name:  # the filesystem's root has no sidecar beside it
                self._add_beside(folder)
        for producer in self.folders:
            if producer.record.source.resolve() != exclude and path.is_relative_to(producer.path):
                return "part of", producer
        return None

    def _add_beside(self, path: Path) -> None:
        """Index the record kept beside ``path``, if there is a readable one."""
        sidecar = sidecar_path_for(path)
        if sidecar in self._looked_at:
            return
        self._looked_at.add(sidecar)
        if sidecar.is_file():
            try:
                self.add(load(sidecar))
            except UnreadableRecord as err:
                self.unreadable.append(str(err))


def records_under(folders: list[Path]) -> list[Path]:
    found = []
    for top in folders:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
            found += [Path(folder) / f for f in sorted(files) if f.endswith(SIDECAR_SUFFIX)]
    return found


def build_index(folders: list[Path], root: str | None) -> Index:
    index = Index()
    for path in records_under(folders):
        try:
            index.add(load(path, root))
        except UnreadableRecord as err:
            index.unreadable.append(str(err))
    return index


def trace(record: Record, index: Index, seen: set[Path] | None = None) -> dict[str, Any]:
    """The tree of ``record``'s inputs, each followed to the run that produced it."""
    seen = set() if seen is None else seen
    source = record.source.resolve()
    node: dict[str, Any] = {
        "record": _shown(record.source),
        "entrypoint": record.block["entrypoint"]["path"],
        "status": (record.block.get("outcome") or {}).get("status"),
        "inputs": [],
    }
    if source in seen:
        node["repeated"] = any(True for _ in declared_entries(record.block["inputs"]))
        return node
    seen.add(source)
    for name, entry in declared_entries(record.block["inputs"]):
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        path = record.resolve(entry["path"]).resolve()
        item: dict[str, Any] = {"name": name, "path": entry["path"], "blake3": entry.get("blake3")}
        found = index.producer_of(entry, path, source) if entry.get("exists") else None
        if found is None:
            item["raw"] = True
        else:
            how, producer = found
            item["link"] = how
            item["via"] = producer.shown
            item["produced_by"] = trace(producer.record, index, seen)
        node["inputs"].append(item)
    return node


def _shown(path: Path) -> str:
    """A record's path as a user would type it: relative to the working folder when under it."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
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
            producer = item["produced_by"]
            via = f", part of {item['via']}" if item["link"] == "part of" else ""
            more = "  (see above)" if producer.get("repeated") else ""
            lines.append(f"{head}  <- {producer['entrypoint']} [{producer['status']}]{via}{more}")
            if not producer.get("repeated"):
                walk(producer, prefix + carry)

    walk(node, "")
    return "\n".join(lines)


def render_dot(artifact: str, node: dict[str, Any]) -> str:
    edges: list[str] = []
    nodes: dict[str, str] = {}

    def file_node(path: str) -> str:
        return nodes.setdefault(f"f:{path}", f'"f:{path}" [shape=note, label="{path}"];')

    def run_node(tree: dict[str, Any]) -> str:
        key = f"r:{tree['record']}"
        nodes.setdefault(
            key,
            f'"{key}" [shape=box, style=rounded, label="{tree["entrypoint"]}\\n{tree["status"]}"];',
        )
        return key

    def walk(tree: dict[str, Any], output: str) -> None:
        run = run_node(tree)
        file_node(output)
        edges.append(f'"{run}" -> "f:{output}";')
        if tree.get("repeated"):
            return
        for item in tree["inputs"]:
            file_node(item["path"])
            edges.append(f'"f:{item["path"]}" -> "{run}" [label="{item["name"]}"];')
            if not item.get("raw"):
                walk(item["produced_by"], item["path"] if item["link"] == "digest" else item["via"])

    walk(node, artifact)
    body = "\n  ".join([*nodes.values(), *dict.fromkeys(edges)])
    return f"digraph lineage {{\n  rankdir=RL;\n  {body}\n}}"


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    # By default, the project the record is in; records beside each input are found anyway.
    within_root = record.root is not None and record.source.resolve().is_relative_to(record.root)
    default = record.root if within_root and record.root is not None else record.source.parent
    folders = [Path(d) for d in args.search] or [default]
    index = build_index(folders, args.root)
    index.add(record)
    outputs = [e for _, e in declared_entries(record.block["outputs"]) if isinstance(e, dict)]
    given = Path(args.file)
    artifact = str(given) if record.source != given or not outputs else outputs[0]["path"]
    tree = trace(record, index)
    if args.json:
        print_json({"artifact": artifact, **tree})
    elif args.dot:
        print(render_dot(artifact, tree))
    else:
        print(render_tree(artifact, tree))
    for problem in index.unreadable:
        print(f"provenance: skipped {problem}", file=sys.stderr)
    return EXIT_OK
