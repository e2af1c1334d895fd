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
from pathlib import Path
from typing import Any

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    add_command,
    add_outside_root,
    print_json,
    warn,
)
from provenance.reading.lineage import (
    DEFAULT_MAX_DEPTH,
    MAX_DEPTH,
    Index,
    StoreFailed,
    Walk,
    index_for,
    trace,
)
from provenance.records import Record, declared_entries, load
from provenance.stores.lineage_index import LineageIndex
from provenance.text import lines_text, short


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "lineage",
        "trace a file back to its raw inputs",
        __doc__,
        run,
        examples=[
            "provenance lineage models/konvid_mos_head.onnx",
            "provenance lineage model.onnx --search runs/ --dot | dot -Tsvg > lineage.svg",
        ],
    )
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


def run(args: argparse.Namespace) -> int:
    store = LineageIndex.from_environment()
    try:
        record = load(args.file, args.root, vouched=store.vouches if store is not None else None)
    except BaseException:
        if store is not None:
            store.close()
        raise
    try:
        index, walk, tree = _traced(record, args, store)
    except StoreFailed:  # the store said why on stderr; the records themselves still answer
        index, walk, tree = _traced(record, args, None)
    finally:
        if store is not None:
            store.close()
    outputs = [e for _, e in declared_entries(record.block["outputs"]) if isinstance(e, dict)]
    given = Path(args.file)
    artifact = str(given) if record.source != given or not outputs else outputs[0]["path"]
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


def _traced(
    record: Record, args: argparse.Namespace, store: LineageIndex | None
) -> tuple[Index, Walk, dict[str, Any]]:
    index = index_for(record, args.search, args.root, outside_root=args.outside_root, store=store)
    walk = Walk(index, args.max_depth)
    return index, walk, trace(record, walk)
