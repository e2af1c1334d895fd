"""``provenance show FILE``: what produced this file, in a few readable lines.

Runs of it still under way are named too, and runs that were lost (their process is gone
without writing a final record), and the records of other runs kept beside it (a failed or
interrupted rerun that wrote none of its outputs), newest first, saying which is newer.
"""

from __future__ import annotations

import argparse
from typing import Any

from provenance.commands import EXIT_FINDING, EXIT_OK, add_command, print_json, style
from provenance.commands.diff import seed_text
from provenance.commands.replay import command_line
from provenance.measure.environment import recorded_variables
from provenance.records import (
    LIVE,
    LOST,
    Attempt,
    Record,
    attempts,
    declared_entries,
    holds_block,
    job_state,
    load,
    rank_states,
    running_beside,
)
from provenance.text import (
    Escaped,
    human_size,
    lines_text,
    one_line,
    plural,
    printable,
    shell_quote,
    short,
)

STATES = {
    LIVE: "running: its process still holds the record",
    LOST: "lost: its process is gone, it wrote no final record",
}


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "show",
        "summarise the run that produced a file",
        __doc__,
        run,
        examples=[
            "provenance show models/konvid_mos_head.onnx",
            "provenance show model.onnx --json | jq .outcome",
            "provenance show model.onnx --check-outcome && deploy model.onnx",
        ],
    )
    parser.add_argument("file", help="an artifact or its sidecar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--check-outcome", action="store_true", help="exit 1 unless the run succeeded"
    )


def summary(record: Record) -> dict[str, Any]:
    block = record.block
    outcome = block.get("outcome")
    # Only a job of several ranks has one: the summary of any other record stays as it was.
    launch = (
        {
            "launch": block["launch"],
            # The record says what was known when it was written; whether a rank it says is
            # running still runs is known only now, from its presence lock.
            "rank_states": [{"rank": r, "state": s} for r, s in rank_states(record)],
        }
        if "launch" in block
        else {}
    )
    left_out = {"left_out": block["left_out"]} if "left_out" in block else {}
    # Only records that hold them say them: the summary of an older record stays as it was.
    optional: dict[str, Any] = {
        k: block[k] for k in ("revision", "volatile", "declaration_errors") if k in block
    }
    # Only a run that set a seed has them: the summary of any other record stays as it was.
    seeds = (
        {"seeds": block["seeds"], "seeds_left_out": block.get("seeds_left_out", 0)}
        if "seeds" in block
        else {}
    )
    return {
        "record": str(record.source),
        "embedded": record.embedded,
        "entrypoint": block["entrypoint"],
        "shared_trainer": block.get("shared_trainer"),
        "command": command_line(record, {}),
        "outcome": outcome,
        "inputs": dict(declared_entries(block["inputs"])),
        "outputs": {
            name: _marked(record, entry) for name, entry in declared_entries(block["outputs"])
        },
        "config_files": list((block.get("config") or {}).get("files", [])),
        # Evidence of what the run had, never applied: replay sets a variable only when asked.
        "environment": recorded_variables(block.get("environment")),
        "fields": record.fields,
        "code_files": len(block["code"]),
        "state": job_state(record) if record.running else None,
        "running": [{"record": str(p), "state": state} for p, state in running_beside(record)],
        "attempts": [attempt_summary(a) for a in attempts(record)],
        **launch,
        **seeds,
        **left_out,
        **optional,
    }


def _marked(record: Record, entry: Any) -> Any:
    """An output entry, with ``this_file`` where it is the file the block was read from."""
    if (
        isinstance(entry, dict)
        and entry.get("embedded_here")
        and isinstance(entry.get("path"), str)
        and holds_block(record, entry["path"])
    ):
        return {**entry, "this_file": True}
    return entry


def attempt_summary(attempt: Attempt) -> dict[str, Any]:
    return {
        "record": str(attempt.source),
        "kind": attempt.kind,
        "status": attempt.status,
        "exit_code": attempt.exit_code,
        "newer": attempt.newer,
        "evidence": attempt.evidence,
        "unreadable": attempt.unreadable,
    }


WHEN = {True: "newer", None: "undated", False: "older"}


def attempt_lines(record: str, found: list[dict[str, Any]]) -> list[str]:
    """The other runs' records beside the one shown, newest first, and which one is shown."""
    if not found:
        return []
    newer = sum(a["newer"] is True for a in found)
    lines = [
        f"  attempts        {plural(len(found), 'other record')} beside it, {newer} newer; "
        f"showing {record}"
    ]
    for a in found:
        if a["unreadable"]:
            lines.append(f"    unreadable    {a['record']}  ({a['evidence']})")
            continue
        code = "" if a["exit_code"] is None else f" (exit {a['exit_code']})"
        lines.append(
            f"    {WHEN[a['newer']]:<13} {a['record']}  {a['status']}{code}: {a['evidence']}"
        )
    return lines


def _revision_line(revision: dict[str, Any]) -> str:
    """``revision  git 1a2b3c4d5e6f (dirty: diff blake3 9f8e7d6c5b4a)``, or why it is unknown."""
    if "error" in revision:
        return f"  revision        {revision['vcs']}: unknown ({revision['error']})"
    commit = revision["commit"]
    at = short(commit) if commit else "(no commit yet)"
    state = f"dirty: diff blake3 {short(revision['diff_blake3'])}" if revision["dirty"] else "clean"
    if not revision["entrypoint_tracked"]:
        state += "; the entrypoint is not tracked"
    return f"  revision        {revision['vcs']} {at}  ({state})"


def _volatile_line(volatile: dict[str, Any]) -> str:
    """When, where and as whom the run went, said apart: it differs from run to run."""
    words = {"started_at": "started", "ended_at": "ended", "duration_seconds": "took"}
    order = ("started_at", "ended_at", "duration_seconds", "host", "user")
    parts = [
        f"{words.get(key, key)} {volatile[key]}" + (" s" if key == "duration_seconds" else "")
        for key in order
        if key in volatile
    ]
    return f"  volatile        {', '.join(parts) or '(none)'}  (differs from run to run)"


def _seed_lines(info: dict[str, Any]) -> list[str]:
    lines = []
    for seed in info.get("seeds") or []:
        text = seed_text(seed)
        lines.append(f"    {text if len(text) <= 90 else text[:89] + '…'}")
    if info.get("seeds_left_out"):
        lines.append(f"    and {info['seeds_left_out']} more, left out of the record")
    return ["  seeds           (in the order the script set them)", *lines] if lines else []


def _left_out_lines(left_out: Any) -> list[str]:
    """What the record says it left out to stay readable (docs/sidecar.md)."""
    lines = []
    paths = left_out.get("paths", []) if isinstance(left_out, dict) else []
    for item in paths if isinstance(paths, list) else []:
        if isinstance(item, dict):
            rank = f" (rank {item['rank']})" if "rank" in item else ""
            lines.append(
                f"    {item.get('table')} {item.get('name')}{rank}: {item.get('left_out')} of "
                f"{item.get('total')} paths, kept the first {item.get('kept')} (blake3 of the "
                f"whole list {short(str(item.get('blake3')))})"
            )
    values = left_out.get("values", []) if isinstance(left_out, dict) else []
    for where in values if isinstance(values, list) else []:
        lines.append(f"    {where}: replaced by its size and digest")
    return ["  left out to stay readable", *lines] if lines else []


RANK_STATES = {
    LIVE: "running: its process still holds its presence",
    LOST: "lost: no process holds its presence, it ended without reporting",
}


def _launch_line(launch: dict[str, Any], states: list[dict[str, Any]]) -> str:
    """``launch  openmpi, 4 ranks: rank 3 failed`` (the ranks that did not succeed)."""
    now = {s["rank"]: s["state"] for s in states}
    others = [
        f"rank {r['rank']} "
        + (f"{RANK_STATES[now[r['rank']]]}" if r["rank"] in now else r["status"])
        + (" first" if r.get("failed_first") is True else "")
        + (f" after rank {r['consequence_of']}" if isinstance(r.get("consequence_of"), int) else "")
        for r in launch["ranks"]
        if r["status"] != "succeeded"
    ]
    how = ", ".join(others) if others else "every rank succeeded"
    return f"  launch          {launch['launcher']}, {launch['world_size']} ranks: {how}"


def _entry_line(name: str, entry: Any, state: str | None = None) -> str:
    if not isinstance(entry, dict):
        return f"    {name:<14} (malformed entry)"
    path = entry.get("path", "?")
    if entry.get("pending"):
        if state == LOST:
            return f"    {name:<14} {path}  (never measured: the run was lost before it ended)"
        return f"    {name:<14} {path}  (pending: not measured until the run ends)"
    if not entry.get("exists"):
        return f"    {name:<14} {path}  (missing)"
    if entry.get("embedded_here"):
        if entry.get("this_file"):
            return f"    {name:<14} {path}  (this file: the block is embedded in it)"
        return f"    {name:<14} {path}  (a copy of the block is embedded in it)"
    notes = []
    if entry.get("kind") == "directory":
        count = entry.get("file_count")
        notes.append(plural(count, "file") if isinstance(count, int) else f"{count} files")
    if isinstance(entry.get("size_bytes"), int):
        notes.append(human_size(entry["size_bytes"]))
    if entry.get("blake3"):
        notes.append(f"blake3 {short(entry['blake3'])}")
    if entry.get("error") or entry.get("errors"):
        notes.append("unreadable when recorded")
    if entry.get("written_by_run") is False:
        notes.append("not written by this run")
    if entry.get("changed_during_run"):
        notes.append("changed during the run")
    return f"    {name:<14} {path}  ({', '.join(notes)})"


def render(info: dict[str, Any]) -> str:
    lines = [
        info["record"]
        + ("  (the block embedded in the artifact)" if info["embedded"] else "")
        + (f"  ({STATES[info['state']]})" if info["state"] else "")
    ]
    ep = info["entrypoint"]
    lines.append(f"  entrypoint      {ep['path']}  (sha256 {short(ep['sha256'])})")
    if info["shared_trainer"]:
        st = info["shared_trainer"]
        lines.append(f"  shared trainer  {st['path']}  (sha256 {short(st['sha256'])})")
    lines.append(f"  command         {info['command']}")
    if "revision" in info:
        lines.append(_revision_line(info["revision"]))
    outcome = info["outcome"]
    if outcome is not None:
        error = (
            f": {outcome['error']['type']}: {outcome['error']['message']}"
            if outcome["error"]
            else ""
        )
        code = "" if outcome["exit_code"] is None else f" (exit {outcome['exit_code']})"
        rank = f" on rank {outcome['rank']}" if isinstance(outcome.get("rank"), int) else ""
        status = outcome["status"]
        if info["state"] == LOST and status == "running":
            status = "lost (the run never ended: no outcome, no exit code)"
        word, _, said = status.partition(" ")
        lines.append(
            Escaped(
                f"  outcome         {style.paint(printable(word))}"
                + printable(f"{' ' if said else ''}{said}{code}{rank}{error}")
            )
        )
        for gate, verdict in outcome["gates"].items():
            values = ", ".join(
                f"{k}={v}" for k, v in verdict.items() if k != "passed" and v is not None
            )
            state = "pass" if verdict.get("passed") else "FAIL"
            lines.append(
                Escaped(
                    printable(f"    gate {gate}: ")
                    + style.paint(state)
                    + printable(f"  ({values})" if values else "")
                )
            )
    if "launch" in info:
        lines.append(_launch_line(info["launch"], info["rank_states"]))
    for other in info["running"]:
        lines.append(f"  {other['state']:<15} {other['record']}  ({STATES[other['state']]})")
    lines += attempt_lines(info["record"], info["attempts"])
    for title in ("inputs", "outputs"):
        lines.append(f"  {title}")
        lines += [_entry_line(n, e, info["state"]) for n, e in info[title].items()] or [
            "    (none)"
        ]
    if info.get("declaration_errors"):
        lines.append("  declaration errors  (unresolved at exit; the run went on)")
        lines += [
            f"    {e['kind']} {e['name']}: {one_line(e['error'])}"
            for e in info["declaration_errors"]
        ]
    if info["config_files"]:
        lines.append("  config files")
        lines += [_entry_line(f"#{i}", e) for i, e in enumerate(info["config_files"], 1)]
    if info["environment"]:
        lines.append("  environment     (as the run had it; replay sets none unless asked)")
        lines += [
            f"    {name:<22} {'(unset)' if value is None else shell_quote(value)}"
            for name, value in info["environment"].items()
        ]
    lines += _seed_lines(info)
    lines.append(
        f"  code            {plural(info['code_files'], 'project file')} with their digests"
    )
    if "volatile" in info:
        lines.append(_volatile_line(info["volatile"]))
    lines += _left_out_lines(info.get("left_out"))
    if info["fields"]:
        lines.append("  recorded fields")
        for key, value in info["fields"].items():
            text = str(value)
            lines.append(f"    {key:<22} {text if len(text) <= 70 else text[:69] + '…'}")
    return lines_text(lines)


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    info = summary(record)
    if args.json:
        print_json(info)
    else:
        print(render(info))
    failed = (info["outcome"] or {}).get("status") not in (None, "succeeded")
    return EXIT_FINDING if args.check_outcome and failed else EXIT_OK
