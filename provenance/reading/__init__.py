"""Reading records: the lineage walk and its index, verifying what a record names, and finding
runs; porcelain (the commands, the report, ``provenance.read``) is built over these."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector off while a command reads many records. What reading
    them makes holds no reference cycle the command leaves behind, and the collector looks
    through every object still held, again and again as they are made: a fifth of a cold
    call over a hundred thousand records, a tenth of a warm one."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
