"""``provenance report [PATH...] --html DIR``: a static site of the runs recorded under PATH.

The site opens from disk in a browser, with no server and no network. Its first page lists the
runs (script, artifact, outcome, gates, and the arguments that differ between runs of the same
script), sortable and filterable (``index.html#filter=WORD`` opens it filtered), above the
lineage graph of every run and artifact, failed runs marked. Each artifact has a page of its
own: its record as ``show`` says it, ``verify``'s verdict, its gates, and what differs from the
previous run of the same script as ``diff`` says it.

PATH is a folder to find records in, or an artifact or its sidecar (default: the working
folder): the runs are those ``provenance runs PATH...`` lists, running and lost ones too.
Records that cannot be read are skipped, with a line on stderr. DIR is replaced whole,
and only if it is a report this wrote (or empty, or absent).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.commands import EXIT_OK, EXIT_USAGE, add_command, add_outside_root, style, warn
from provenance.commands import show as show_command
from provenance.commands.diff import compare, readings, volatile_changes
from provenance.emit.report import Page, ReportError, render, write_site
from provenance.read import RunSummary, collect_runs, differing
from provenance.reading.lineage import Index
from provenance.reading.verify import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    QUIET,
    Verifier,
    counts_of,
)
from provenance.record.sidecar import SIDECAR_SUFFIX
from provenance.records import (
    Boundary,
    Record,
    UnreadableRecord,
    declared_entries,
    load,
    sidecar_target,
)
from provenance.stores.digest_cache import DigestCache
from provenance.text import plural


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "report",
        "write a static HTML site of runs and their lineage",
        __doc__,
        run,
        examples=[
            "provenance report runs/ --html site/",
            "provenance report runs/demo --html runs/demo/site && open runs/demo/site/index.html",
            "provenance report models/a.onnx models/b.onnx --html /tmp/site --no-code",
        ],
    )
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="folders to find records in, or artifacts"
    )
    parser.add_argument("--html", required=True, metavar="DIR", help="the folder of the site")
    parser.add_argument("--no-code", action="store_true", help="verify without the code digests")
    parser.add_argument("--no-cache", action="store_true", help="verify reading every file afresh")
    add_outside_root(parser)


@dataclass
class Collected:
    """The runs a report shows (each record with its run's summary, as ``runs`` lists it), and
    the records it could not read."""

    records: list[Record]
    summaries: list[RunSummary] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)


def collect(paths: list[str], root: str | None) -> Collected:
    """The runs ``provenance runs`` lists for ``paths`` (found by the same ``collect_runs``,
    one per record file: running and lost runs, and the side records of other runs, too),
    each with its record. The one place the report finds runs: what it shows is built from
    this alone."""
    found = collect_runs(paths)
    collected = Collected(
        [], unreadable=list(found.unreadable), folders=[Path(p) for p in paths if Path(p).is_dir()]
    )
    for summary in found.runs:
        try:
            record = load(summary.record, root)
        except UnreadableRecord as err:  # changed since it was found
            collected.unreadable.append(str(err))
            continue
        collected.records.append(record)
        collected.summaries.append(summary)
    return collected


def page_name(record: Record) -> str:
    """The page of a record's artifact: named by a digest of where the record is, so nothing a
    record says becomes part of a file name or a link."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(record.source))).hexdigest()
    return f"artifacts/{digest[:20]}.html"


def artifact_of(record: Record) -> Path:
    """The artifact a record is the sidecar of (or is embedded in)."""
    if record.embedded:
        return record.source
    target = sidecar_target(record.source)
    return target.with_name(target.name.removesuffix(SIDECAR_SUFFIX))


def _order_key(record: Record) -> tuple[int, str]:
    """When a run ended, as its record's file says (written as the run ends), then its path."""
    try:
        written = os.stat(record.source).st_mtime_ns
    except OSError:
        written = 0
    return written, os.path.realpath(record.source)


def _script(record: Record) -> str:
    """The script, or the command path it recorded (``evalcli.py evaluate``), as ``runs``
    names it."""
    command = record.block.get("command")
    return command if isinstance(command, str) else str(record.block["entrypoint"]["path"])


def _named(summary: RunSummary) -> str:
    return summary.command if summary.command is not None else summary.script


def previous_runs(records: list[Record]) -> dict[int, Record]:
    """For each record (by its place in ``records``), the run of the same script before it."""
    by_script: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        by_script[_script(record)].append(i)
    previous = {}
    for places in by_script.values():
        ordered = sorted(places, key=lambda i: _order_key(records[i]))
        for before, after in itertools.pairwise(ordered):
            previous[after] = records[before]
    return previous


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def differing_arguments(summaries: list[RunSummary]) -> dict[int, list[str]]:
    """For each run (by its place in ``summaries``), ``key=value`` for each of its parameters
    (as ``runs`` shows them: the arguments, the resolved config, or the command line's words
    where nothing was parsed) whose value is not the same across the runs of its script."""
    by_script: dict[str, list[int]] = defaultdict(list)
    for i, summary in enumerate(summaries):
        by_script[_named(summary)].append(i)
    found: dict[int, list[str]] = {}
    for places in by_script.values():
        keys = differing([summaries[i] for i in places])
        for i in places:
            params = summaries[i].params
            found[i] = [
                f"{k.removeprefix('args.')}={_text(params[k])}" for k in keys if k in params
            ]
    return found


def _short(key: str) -> str:
    return key.removeprefix("args.")  # as runs shows an argument: lr=0.01, config.x=1


def _gates(record: Record) -> list[dict[str, Any]]:
    gates = (record.block.get("outcome") or {}).get("gates") or {}
    return [
        {
            "name": name,
            "passed": bool(verdict.get("passed")),
            "detail": ", ".join(
                f"{k}={_text(v)}" for k, v in verdict.items() if k != "passed" and v is not None
            ),
        }
        for name, verdict in (gates.items() if isinstance(gates, dict) else [])
        if isinstance(verdict, dict)
    ]


def _shown(path: Path | str, base: Path) -> str:
    """A path as the site shows it: relative to the report's first folder when under it."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, base)
    return absolute if relative == ".." or relative.startswith("../") else relative


def graph(records: list[Record], boundary: Boundary, root: str | None) -> dict[str, Any]:
    """The lineage of every run as nodes (runs and artifacts) and edges: a run to what it
    wrote, an input to the run that read it, and the run that made an input's bytes (found as
    ``lineage`` finds it: by digest, or as part of a folder it wrote) to that input."""
    index = Index(boundary, root)
    for record in records:
        index.add(record)
    run_ids = {os.path.realpath(r.source): f"r{i}" for i, r in enumerate(records)}
    artifacts: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str], None] = {}

    def artifact(record: Record, entry: dict[str, Any]) -> str:
        shown = entry["path"]
        place = record.place(shown, boundary)
        where = place.path or place.written
        key = str(where) if where is not None else f"?{shown}"
        if key not in artifacts:
            artifacts[key] = {"id": f"a{len(artifacts)}", "label": str(shown), "missing": True}
        if entry.get("exists") or entry.get("pending"):
            artifacts[key]["missing"] = False  # some run found it (or will have)
        node: str = artifacts[key]["id"]
        return node

    for record in records:
        run = run_ids[os.path.realpath(record.source)]
        for _, entry in declared_entries(record.block["outputs"]):
            if isinstance(entry, dict) and "path" in entry:
                edges[(run, artifact(record, entry))] = None
        for _, entry in declared_entries(record.block["inputs"]):
            if not isinstance(entry, dict) or "path" not in entry:
                continue
            node = artifact(record, entry)
            edges[(node, run)] = None
            if not entry.get("exists"):
                continue
            place = record.place(entry["path"], boundary)
            found = index.producer_of(entry, place, os.path.realpath(record.source))
            maker = run_ids.get(found[1].source) if found is not None else None
            if maker is not None and maker != run:
                edges[(maker, node)] = None
    return {"artifacts": artifacts, "edges": list(edges), "runs": run_ids}


def build_pages(collected: Collected, args: argparse.Namespace) -> list[Page]:
    """Every page of the site, from the collected records."""
    records = collected.records
    base = Path(os.path.abspath(collected.folders[0] if collected.folders else os.getcwd()))
    pages_of = [page_name(r) for r in records]
    previous = previous_runs(records)
    arguments = differing_arguments(collected.summaries)
    boundary = Boundary.of(
        [*{r.base for r in records}, *collected.folders], anywhere=args.outside_root
    )
    lineage = graph(records, boundary, args.root)
    page_of_record = {os.path.realpath(r.source): p for r, p in zip(records, pages_of, strict=True)}
    page_of_artifact = {
        os.path.abspath(artifact_of(r)): p for r, p in zip(records, pages_of, strict=True)
    }
    nodes = []
    for i, record in enumerate(records):
        status = collected.summaries[i].status
        nodes.append(
            {
                "id": f"r{i}",
                "kind": "run",
                "label": _script(record),
                "status": status,
                "failed": status not in ("succeeded", "running"),  # lost is: it never ended
                "href": pages_of[i],
            }
        )
    makers = {b: a for a, b in lineage["edges"] if a.startswith("r")}
    readers: dict[str, str] = {}
    for a, b in lineage["edges"]:
        readers.setdefault(a, b)
    href_of_run = {f"r{i}": p for i, p in enumerate(pages_of)}
    for key, node in lineage["artifacts"].items():
        own = page_of_artifact.get(key)
        run = makers.get(node["id"]) or readers.get(node["id"])
        nodes.append(
            {
                "id": node["id"],
                "kind": "artifact",
                "label": node["label"],  # as the records say it, as lineage shows it
                "href": own or href_of_run.get(run or "", ""),
                "missing": node["missing"],
            }
        )
    rows = [
        {
            "script": _script(record),
            "artifact": _shown(artifact_of(record), base),
            "href": pages_of[i],
            "status": collected.summaries[i].status,
            "gates": _gates(record),
            "arguments": arguments[i],
        }
        for i, record in enumerate(records)
    ]
    index_page = Page(
        "index.html",
        "index.html.j2",
        {
            "title": f"provenance report: {_shown(base, base.parent)}",
            "rows": rows,
            "graph": {"nodes": nodes, "edges": [list(e) for e in lineage["edges"]]},
            "unreadable": collected.unreadable,
        },
    )
    cache = None if args.no_cache else DigestCache.from_environment()
    verifier = Verifier(DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, cache, args.outside_root)
    pages = [index_page]
    try:
        for i, record in enumerate(records):
            checks = verifier.record(record, code=not args.no_code)
            before = previous.get(i)
            diff = None
            if before is not None:
                differences = compare(before, record)
                diff = {
                    "href": "../" + page_of_record[os.path.realpath(before.source)],
                    "record": _shown(before.source, base),
                    "lines": readings(
                        differences, (before.block.get("args"), record.block.get("args"))
                    ),
                    "volatile": volatile_changes(before, record),
                }
            pages.append(
                Page(
                    pages_of[i],
                    "artifact.html.j2",
                    {
                        "title": _shown(artifact_of(record), base),
                        "record": _shown(record.source, base),
                        "script": _script(record),
                        "status": collected.summaries[i].status,
                        # line by line: each is escaped on its own, the breaks kept
                        "show": show_command.render(show_command.summary(record)).split("\n"),
                        "checks": [c for c in checks if c.status not in QUIET or c.group != "code"],
                        "counts": counts_of(checks),
                        "findings": sum(c.status not in QUIET for c in checks),
                        "gates": _gates(record),
                        "diff": diff,
                    },
                )
            )
    finally:
        verifier.progress.close()
        if cache is not None:
            cache.close()
    return pages


def run(args: argparse.Namespace) -> int:
    style.configure("never", sys.stdout)  # pages hold no terminal colour
    if not args.html:
        warn("--html: an empty value names no folder: give the folder of the site")
        return EXIT_USAGE
    paths = args.paths or ["."]
    for given in paths:
        if not os.path.lexists(given):
            warn(f"{given}: no such file or folder")
            return EXIT_USAGE
    collected = collect(paths, args.root)
    for problem in collected.unreadable:
        warn(f"skipped {problem}")
    try:
        write_site(render(build_pages(collected, args)), Path(args.html))
    except ReportError as err:
        warn(str(err))
        return EXIT_USAGE
    index = Path(args.html) / "index.html"
    print(f"{index}: {plural(len(collected.records), 'run')}")
    return EXIT_OK
