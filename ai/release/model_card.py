"""A shipped model's card in Markdown, its evidence read from the records and nothing else.

The evidence is the model's lineage back to the corpus (traced by ``provenance lineage``'s own
code), every run and gate on the way with its verdict and numbers, and every artifact with its
digest, re-checked on disk (by ``provenance verify``'s own code). Whatever is wrong with the
chain (a run that did not succeed, a failed gate, a record missing or unreadable, an artifact
changed since it was recorded) is listed at the top of the card.

An artifact that was recorded but is not present where the card is rendered (a gitignored local
corpus, a cache kept on one machine) contradicts nothing: it is local-only evidence, shown with
its recorded digest and marked as not present, and it does not fail the card. Only evidence
that disagrees with the record fails it, so the local corpus never becomes a CI contract.

Every value taken from a record is untrusted: it goes into the card as a code span, with
control and bidirectional characters written as escapes, cut to ``MAX_FIELD`` characters, so
it can neither end its line, nor open a link, image or HTML tag, nor reorder the text around it.
The card holds no time and no absolute path: paths are relative to the root it is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance import (
    MAX_LINEAGE_DEPTH,
    Boundary,
    Checker,
    Lineage,
    Record,
    UnreadableRecord,
    lineage,
    read_json,
    record_of,
    sidecar_path_for,
)

MAX_FIELD = 200  # characters of one value from a record shown on the card
MAX_FIGURES = 12  # numbers a run recorded beside its block, shown with its gates
# What could end a line, hide text or reorder it: written as a visible escape instead.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]"
)
_HEX64 = re.compile("[0-9a-f]{64}")
SUCCEEDED = "succeeded"
UNCHANGED, MISSING, SKIPPED = "unchanged", "missing", "skipped"  # what a check finds
LOCAL_ONLY = "not present here (local-only evidence)"


def code(value: object, *, cell: bool = False, limit: int = MAX_FIELD) -> str:
    """``value`` as a Markdown code span that shows it literally, whatever it holds."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    text = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    if cell:  # GitHub's tables split a row at every unescaped pipe, code spans included
        text = text.replace("|", "\\|")
    if not text:
        return "*(empty)*"
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def number(value: object, *, cell: bool = False) -> str:
    """A recorded value: plain when it is a number or a boolean, a code span otherwise."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return code(value, cell=cell)


def digest(value: object) -> str:
    return f"`{value}`" if isinstance(value, str) and _HEX64.fullmatch(value) else code(value)


@dataclass
class Card:
    """What the card says, and what its run records about what it read."""

    text: str
    problems: list[str]
    records: list[dict[str, Any]]  # each record read: path (relative to the root), sha256
    model_id: str | None
    local_only: list[dict[str, Any]] = field(default_factory=list)  # recorded, not present here


@dataclass
class _Builder:
    model: Path
    root: Path
    corpora: list[Path]
    checker: Checker
    problems: list[str] = field(default_factory=list)
    local_only: list[dict[str, Any]] = field(default_factory=list)  # path, recorded digest
    lineage: Lineage | None = None
    records: dict[str, Record] = field(default_factory=dict)  # each run on it, by tree "record"
    corpus: list[tuple[Record, Any]] = field(default_factory=list)  # the folders it begins at
    _roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        forms = {os.path.abspath(self.root), os.path.realpath(self.root)}
        self._roots = tuple(sorted(forms))

    def relative(self, absolute: str) -> str | None:
        for root in self._roots:
            if absolute == root:
                return "."
            if absolute.startswith(root.rstrip(os.sep) + os.sep):
                return Path(os.path.relpath(absolute, root)).as_posix()
        return None

    def scrub(self, message: str) -> str:
        """A reader's message with the root's absolute path taken out of the paths it names."""
        for root in self._roots:
            message = message.replace(root.rstrip(os.sep) + os.sep, "")
        return message

    def written(self, record: Record, shown: object) -> str | None:
        """Where a path a record names is, absolute, from its text alone (or None)."""
        written = record.written(shown)
        return None if written is None else str(written)

    def path(self, record: Record, shown: object, *, cell: bool = False) -> str:
        """A path a record names, as the card shows it: relative to the root."""
        absolute = self.written(record, shown)
        relative = None if absolute is None else self.relative(absolute)
        if relative is not None:
            return code(relative, cell=cell)
        name = Path(absolute).name if absolute is not None else shown
        return f"{code(name, cell=cell)} (outside the root)"

    def source(self, record: Record, *, cell: bool = False) -> str:
        relative = self.relative(os.path.abspath(record.source))
        name = relative if relative is not None else record.source.name
        if relative is None:
            return code(name, cell=cell) + " (outside the root)"
        if self.relative(os.path.realpath(record.source)) is None:
            return code(name, cell=cell) + " (a link to a record outside the root)"
        return code(name, cell=cell)

    def outside(self, record: Record) -> bool:
        """Whether a record's bytes are read from outside the root, through a link or not."""
        return self.relative(os.path.realpath(record.source)) is None

    def in_corpus(self, record: Record, shown: object) -> bool:
        absolute = self.written(record, shown)
        return absolute is not None and any(Boundary.of([c]).admits(absolute) for c in self.corpora)


def _run_name(record: Record, *, cell: bool = False) -> str:
    return code(record.block["entrypoint"]["path"], cell=cell)


def _nodes(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield tree
    for item in tree["inputs"]:
        if "produced_by" in item:
            yield from _nodes(item["produced_by"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    model: Path, root: Path, evidence: list[Path], corpora: list[Path], checker: Checker
) -> Card:
    """The card of ``model``: its record, the lineage from it and from each evidence record;
    ``checker`` re-hashes the artifacts."""
    b = _Builder(model, root, corpora, checker)
    try:
        record = record_of(model)
    except UnreadableRecord as err:
        beside = sidecar_path_for(model)
        b.problems.append(
            f"The model has no record: {code(beside.name)} is not beside it."
            if not os.path.lexists(beside)
            else f"The model's own record cannot be read: {code(b.scrub(str(err)))}."
        )
        shown = b.relative(os.path.abspath(model)) or model.name
        return _finish(b, [_heading(None), "", f"File: {code(shown)}", ""], [], None)
    chain = b.lineage = lineage(record, search=[root], max_depth=MAX_LINEAGE_DEPTH)
    tree = chain.tree
    entry = _model_entry(b, record)
    description = _description(b, record)
    model_id = description.get("id") if isinstance(description.get("id"), str) else None
    lines = [_heading(model_id), ""]
    lines += _model_section(b, record, entry, description)
    checked: list[tuple[Path, dict[str, Any]]] = []
    for path in evidence:
        try:
            other = record_of(path)
        except UnreadableRecord as err:
            b.problems.append(f"An evidence record cannot be read: {code(b.scrub(str(err)))}.")
            continue
        if entry is not None and not any(
            e.blake3 and e.blake3 == entry.get("blake3") for e in other.inputs
        ):
            b.problems.append(
                f"The evidence {b.source(other)} did not read this model: none of its inputs has "
                "the model's digest."
            )
        checked.append((path, chain.trace(other)))
    b.records = chain.records
    trees = [tree, *(t for _, t in checked)]
    lines += _runs_section(b)
    lines += _corpus_section(b, trees)
    lines += _lineage_section(b, tree, checked)
    lines += _artifacts_section(b, record, [b.records[t["record"]] for _, t in checked])
    for run in b.records.values():
        if b.outside(run):
            # The root is what the card vouches for: a record elsewhere (or a link to one
            # planted under the root) is a claim nobody keeping the root has checked.
            b.problems.append(
                f"The record {b.source(run)} of {_run_name(run)} is read from outside the root."
            )
    for problem in chain.unreadable:
        b.problems.append(f"A record under the root could not be read: {code(b.scrub(problem))}.")
    if chain.cut_short:
        b.problems.append(
            f"The lineage goes deeper than {chain.max_depth} runs: the rest is not shown."
        )
    records = [
        {
            "path": b.relative(os.path.abspath(r.source)) or r.source.name,
            "sha256": _sha256(r.source),
        }
        for r in b.records.values()
    ]
    return _finish(b, lines, records, model_id)


def _heading(model_id: str | None) -> str:
    return f"# Model card: {code(model_id) if model_id else 'unidentified model'}"


def _finish(
    b: _Builder, lines: list[str], records: list[dict[str, Any]], model_id: str | None
) -> Card:
    status = _status(b.problems, len(b.local_only))
    body = [lines[0], "", *status, *lines[2:]]
    while body and body[-1] == "":
        body.pop()
    return Card("\n".join(body) + "\n", list(b.problems), records, model_id, list(b.local_only))


def _status(problems: list[str], local_only: int) -> list[str]:
    if not problems and not local_only:
        return [
            "**Evidence: complete.** Every record on the chain was read, every run on it "
            "succeeded, every gate passed, and every artifact still has its recorded digest.",
            "",
        ]
    if not problems:
        noun = "artifact is" if local_only == 1 else "artifacts are"
        return [
            "**Evidence: complete.** Every record on the chain was read, every run on it "
            "succeeded, every gate passed, and every artifact present still has its recorded "
            f"digest. {local_only} recorded {noun} not present here (local-only evidence): "
            "the card shows the digest each was recorded with.",
            "",
        ]
    noun = "problem" if len(problems) == 1 else "problems"
    lines = [
        f"> **⚠ EVIDENCE INCOMPLETE OR FAILED: {len(problems)} {noun}.** What follows is what "
        "the records say; it is not the evidence of a sound model until these are resolved.",
        ">",
    ]
    lines += [f"> {i}. {p}" for i, p in enumerate(problems, start=1)]
    return [*lines, ""]


def _model_entry(b: _Builder, record: Record) -> dict[str, Any] | None:
    """The output of the model's record that is the model file itself."""
    target = os.path.abspath(b.model)
    for output in record.outputs:
        if b.written(record, output.path) == target:
            return dict(output.raw)
    b.problems.append(
        f"The record {b.source(record)} does not list the model as one of its outputs."
    )
    return None


def _description(b: _Builder, record: Record) -> dict[str, Any]:
    """The model's own description: its model sidecar, or the model when it is a JSON file."""
    outputs = record.block["outputs"]
    sidecar = outputs.get("model_sidecar") if isinstance(outputs, dict) else None
    target: Path | None = b.model if b.model.suffix == ".json" else None
    if isinstance(sidecar, dict) and sidecar.get("exists"):
        place = record.place(sidecar.get("path"), record.boundary().widened([b.root]))
        target = place.path
    if target is None:
        return {}
    try:
        document = read_json(target)
    except UnreadableRecord as err:
        b.problems.append(f"The model's description cannot be read: {code(b.scrub(str(err)))}.")
        return {}
    return document if isinstance(document, dict) else {}


def _model_section(
    b: _Builder, record: Record, entry: dict[str, Any] | None, description: dict[str, Any]
) -> list[str]:
    lines = ["## Model", "", "| field | value |", "|---|---|"]
    lines.append(
        f"| file | {code(b.relative(os.path.abspath(b.model)) or b.model.name, cell=True)} |"
    )
    if entry is not None:
        lines.append(f"| sha256 (recorded) | {digest(entry.get('sha256'))} |")
        lines.append(f"| size (bytes) | {number(entry.get('size_bytes'), cell=True)} |")
    status = (record.block.get("outcome") or {}).get("status")
    lines.append(f"| made by | {_run_name(record, cell=True)} ({code(status, cell=True)}) |")
    lines.append(f"| record | {b.source(record, cell=True)} |")
    for key in ("kind", "opset", "input_name", "input_shape", "output_name", "output_shape"):
        if key in description:
            lines.append(f"| {key} | {code(description[key], cell=True)} |")
    for key in ("features",):
        if key in description:
            lines.append(f"| {key} | {code(description[key], cell=True, limit=400)} |")
    lines.append("")
    members = description.get("members")
    if isinstance(members, list) and members:
        lines += ["### Members", "", "| seed | id | file | sha256 |", "|---|---|---|---|"]
        for member in members:
            m = member if isinstance(member, dict) else {}
            lines.append(
                f"| {number(m.get('seed'), cell=True)} | {code(m.get('id'), cell=True)} | "
                f"{code(m.get('onnx'), cell=True)} | {digest(m.get('sha256'))} |"
            )
        lines.append("")
    return lines


def _runs_section(b: _Builder) -> list[str]:
    lines = [
        "## Evidence",
        "",
        "### Runs and gates",
        "",
        "Every run on the chain: its status, each gate it recorded with its verdict and numbers,",
        "and the figures it recorded beside them.",
        "",
        "| run | record | record sha256 | status | gates | figures |",
        "|---|---|---|---|---|---|",
    ]
    for record in b.records.values():
        outcome = record.block.get("outcome") or {}
        status = outcome.get("status")
        if status != SUCCEEDED:
            b.problems.append(
                f"The run of {_run_name(record)} (record {b.source(record)}) did not succeed: "
                f"its status is {code(status)}, exit code {number(outcome.get('exit_code'))}."
            )
        gates = []
        for gate, values in (outcome.get("gates") or {}).items():
            passed = values.get("passed") is True
            if not passed:
                b.problems.append(
                    f"The gate {code(gate)} of {_run_name(record)} (record {b.source(record)}) "
                    "failed."
                )
            numbers = ", ".join(
                f"{code(k, cell=True)} {number(v, cell=True)}"
                for k, v in values.items()
                if k != "passed"
            )
            verdict = "pass" if passed else "**FAIL**"
            gates.append(f"{code(gate, cell=True)} {verdict}" + (f": {numbers}" if numbers else ""))
        figures = [
            f"{code(k, cell=True)} {number(v)}"
            for k, v in sorted(record.fields.items())
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ][:MAX_FIGURES]
        shown = code(status, cell=True)
        lines.append(
            f"| {_run_name(record, cell=True)} | {b.source(record, cell=True)} | "
            f"`{_sha256(record.source)}` | {shown if status == SUCCEEDED else f'**{shown}**'} | "
            f"{'; '.join(gates) or '-'} | {', '.join(figures) or '-'} |"
        )
    return [*lines, ""]


def _corpus_section(b: _Builder, trees: list[dict[str, Any]]) -> list[str]:
    lines = [
        "### Corpus",
        "",
        "Where the chain begins: what no run on it made from another file.",
        "",
    ]
    seen: set[str] = set()
    for tree in trees:
        for node in _nodes(tree):
            record = b.records[node["record"]]
            for item in node["inputs"]:
                if item.get("link") == "part of":
                    producer = b.records[item["produced_by"]["record"]]
                    folder = _output_named(producer, item["via"])
                    absent = "" if _present(b, producer, item["via"]) else f", {LOCAL_ONLY}"
                    line = (
                        f"- {b.path(producer, item['via'])}, {_digest_of(folder)}, written by "
                        f"{_run_name(producer)} (record {b.source(producer)}){absent}"
                    )
                    if folder is not None and line not in seen:
                        b.corpus.append((producer, folder))
                elif item.get("raw") and b.in_corpus(record, item["path"]):
                    line = f"- {b.path(record, item['path'])}, a raw input in the corpus"
                else:
                    continue
                if line not in seen:
                    seen.add(line)
                    lines.append(line)
    if not seen:
        lines.append("- none found: no input on the chain is part of a recorded corpus")
        b.problems.append("The chain does not lead back to a corpus.")
    return [*lines, ""]


def _present(b: _Builder, record: Record, shown: object) -> bool:
    absolute = b.written(record, shown)
    return absolute is not None and os.path.lexists(absolute)


def _output_named(record: Record, shown: object) -> dict[str, Any] | None:
    for output in record.outputs:
        if output.raw.get("path") == shown:
            return dict(output.raw)
    return None


def _digest_of(entry: dict[str, Any] | None, *, cell: bool = False) -> str:
    if entry is None:
        return "no digest recorded"
    if entry.get("sha256"):
        return f"sha256 {digest(entry['sha256'])}"
    if not entry.get("blake3"):
        return "no digest recorded"
    shown = f"blake3 {digest(entry['blake3'])}"
    if entry.get("kind") == "directory":
        shown += f" (tree of {number(entry.get('file_count'), cell=cell)} files)"
    return shown


def _lineage_section(
    b: _Builder, tree: dict[str, Any], checked: list[tuple[Path, dict[str, Any]]]
) -> list[str]:
    lines = ["### Lineage", "", "Each input, and the run that made it (by digest).", ""]
    lines += _tree(b, tree, b.model.name)
    for path, other in checked:
        lines += ["", f"Checked by {code(path.name)}:", ""]
        lines += _tree(b, other, path.name)
    return [*lines, ""]


def _tree(b: _Builder, tree: dict[str, Any], artifact: str) -> list[str]:
    top = b.records[tree["record"]]
    lines = [f"- {code(artifact)} ← {_run_name(top)} ({code(tree['status'])})"]

    def walk(node: dict[str, Any], depth: int) -> None:
        record = b.records[node["record"]]
        for item in node["inputs"]:
            head = f"{'  ' * depth}- {code(item['name'])} {b.path(record, item['path'])}"
            if item.get("raw"):
                if b.in_corpus(record, item["path"]):
                    lines.append(f"{head}: raw input in the corpus")
                else:
                    lines.append(f"{head}: **no record accounts for it**")
                    b.problems.append(
                        f"No record accounts for {b.path(record, item['path'])}, the input "
                        f"{code(item['name'])} of {_run_name(record)}: its record is missing, "
                        "or it is a raw input outside the corpus."
                    )
                continue
            if item.get("truncated"):
                lines.append(f"{head}: made by a run too deep to follow")
                continue
            producer = item["produced_by"]
            made = b.records[producer["record"]]
            via = f", part of {b.path(made, item['via'])}" if item["link"] == "part of" else ""
            more = " (see above)" if producer.get("repeated") else ""
            lines.append(f"{head} ← {_run_name(made)} ({code(producer['status'])}){via}{more}")
            if not producer.get("repeated"):
                walk(producer, depth + 1)

    walk(tree, 1)
    return lines


def _artifacts_section(b: _Builder, record: Record, evidence: list[Record]) -> list[str]:
    """Every file the chain read, the model's own outputs and the evidence's, re-checked."""
    entries: list[tuple[Record, str, Any]] = []
    for output_of in (record, *evidence):
        entries += [(output_of, "output", dict(e.raw)) for e in output_of.outputs]
    for run in b.records.values():
        entries += [(run, "input", dict(e.raw)) for e in run.inputs]
    entries += [(producer, "output", folder) for producer, folder in b.corpus]
    lines = [
        "### Artifacts",
        "",
        "Each artifact with its recorded digest, checked against the file on disk now. One that",
        f"is recorded but absent here is {LOCAL_ONLY}: its recorded digest is what the card",
        "vouches for, and it is no problem; one that disagrees with its record is.",
        "",
        "| artifact | kind | digest | now |",
        "|---|---|---|---|",
    ]
    seen: set[tuple[str | None, object]] = set()
    for owner, group, entry in entries:
        if not isinstance(entry, dict):
            continue
        key = (b.written(owner, entry.get("path")), entry.get("blake3"))
        if key in seen:
            continue
        seen.add(key)
        assert b.lineage is not None
        check = b.checker.check(owner, entry, group=group, boundary=b.lineage.boundary)
        kind = entry.get("kind", "missing" if not entry.get("exists") else "?")
        shown_digest = _digest_of(entry, cell=True)
        where = b.path(owner, entry.get("path"), cell=True)
        if check.status == MISSING:
            # Recorded as present, absent here: nothing on disk contradicts the record.
            lines.append(f"| {where} | {code(kind, cell=True)} | {shown_digest} | {LOCAL_ONLY} |")
            b.local_only.append(
                {
                    "path": b.relative(key[0]) or Path(key[0]).name if key[0] else None,
                    "sha256": entry.get("sha256"),
                    "blake3": entry.get("blake3"),
                }
            )
            continue
        now = check.status if check.status == UNCHANGED else f"**{check.status}**"
        if check.detail:
            now += f" ({code(check.detail, cell=True)})"
        lines.append(f"| {where} | {code(kind, cell=True)} | {shown_digest} | {now} |")
        if check.status != UNCHANGED:
            verb = "could not be checked" if check.status == SKIPPED else f"is {check.status}"
            b.problems.append(
                f"The artifact {b.path(owner, entry.get('path'))} {verb} since it was recorded"
                + (f": {code(check.detail)}." if check.detail else ".")
            )
    return [*lines, ""]
