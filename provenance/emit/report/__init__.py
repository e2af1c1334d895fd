"""The HTML report: a static site of runs, their lineage graph and one page per artifact.

Pages are built from Jinja2 templates with autoescaping on for every page, so a value from a
record (hostile input) is text wherever it lands; the only other way record text reaches a page
is the graph's JSON, which Jinja2's ``tojson`` escapes for a ``<script>`` element, and which the
page's script puts into the SVG with ``textContent``, never as markup. The graph is laid out in
the browser by the vendored dagre (MIT, ``dagre.LICENSE``), so the site opens from disk with no
server, no network and no Graphviz.

The site is written into a new folder beside the destination, every file atomically, then
swapped with the old one in one step where the system can (``renameat2``), so a reader finds the
old site or the new one, never a mix; a folder that is not a site this wrote is never replaced.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError
from provenance.record.sidecar import atomic_write
from provenance.text import plural, printable

HERE = Path(__file__).parent
# Written into every site: a folder without it is not replaced.
MARKER = ".provenance-report"
MARKER_TEXT = b"written by provenance report: replaced whole by its next run\n"
ASSETS = ("dagre.min.js", "dagre.LICENSE")


class ReportError(ProvenanceError):
    """The site cannot be written where it was asked for."""


@dataclass(frozen=True)
class Page:
    """One page of the site: its name in the site and what its template is given."""

    name: str  # a name this module made, never text from a record
    template: str
    context: dict[str, Any]


def render(pages: list[Page]) -> dict[str, bytes]:
    """Each page's bytes by its name in the site, and the bundled assets."""
    try:
        import jinja2
    except ImportError as err:
        raise ReportError(
            "the HTML report needs Jinja2: pip install 'provenance-sidecar[report]'"
        ) from err
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE),
        autoescape=True,  # every page, whatever its name: record text is always escaped
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.finalize = _shown  # every value a page shows, before autoescaping
    env.filters["plural"] = plural  # {{ n | plural('run') }}: 1 run, 2 runs
    files = {p.name: env.get_template(p.template).render(**p.context).encode() for p in pages}
    for asset in ASSETS:
        files[f"assets/{asset}"] = (HERE / asset).read_bytes()
    files[MARKER] = MARKER_TEXT
    return files


def _is_marker(path: Path) -> bool:
    """Whether ``path`` is the marker a report left: a regular file (not a link to one) holding
    exactly what the report writes there, so no other folder is taken for a report."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(MARKER_TEXT):
        return False
    try:
        return path.read_bytes() == MARKER_TEXT
    except OSError:
        return False


def _shown(value: Any) -> Any:
    """What a page shows of a value: a string as the command prints it (controls, bidi and
    lone surrogates written as escapes), before the page escapes it for HTML; markup this
    report made itself is left alone."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return printable(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def write_site(files: dict[str, bytes], dest: Path) -> None:
    """Put the site at ``dest`` whole: built beside it, then swapped in (see the docstring)."""
    dest = Path(os.path.abspath(dest))
    if os.path.lexists(dest):
        if dest.is_symlink():
            raise ReportError(
                f"{dest}: a link (to {os.readlink(dest)}): not replaced, as the site is replaced"
                " whole, link and all; name the folder itself"
            )
        if not dest.is_dir():
            raise ReportError(f"{dest}: not a folder: not replaced")
        if any(dest.iterdir()) and not _is_marker(dest / MARKER):
            raise ReportError(
                f"{dest}: a folder that holds something else than a report: not replaced"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new-", dir=dest.parent))
    try:
        for name, data in sorted(files.items()):
            atomic_write(staging / name, data, follow_symlinks=False)
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the site from its readers
        _swap_in(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)  # the new site that did not go in, or the old one it replaced


def _swap_in(staging: Path, dest: Path) -> None:
    """Make ``staging`` the site at ``dest``; what was there ends at ``staging``."""
    if not os.path.lexists(dest):
        os.rename(staging, dest)
        os.mkdir(staging)  # for the caller's clean-up, as after an exchange
        return
    if _exchange(staging, dest):
        return
    # No atomic exchange here: two renames, the old site put back if the second fails.
    aside = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rmdir(aside)
    os.rename(dest, aside)
    try:
        os.rename(staging, dest)
    except OSError:
        os.rename(aside, dest)
        raise
    os.rename(aside, staging)


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux's ``renameat2(RENAME_EXCHANGE)``); False where the
    system cannot, and nothing was changed."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    done = call(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(done == 0)
