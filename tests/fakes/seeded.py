"""Seeds the way --how says, each a real seeding call, then writes what the generators draw, so
a test can tell the seeding still took effect. Seeds before and after its run, which no record
holds, and says which seeding functions are still wrapped once the run is over."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import wrapt

from provenance import recorded_run


class Hostile(int):
    """An int whose every way of being shown or converted raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__

    def __index__(self) -> int:
        raise RuntimeError("no index")

    def __int__(self) -> int:
        raise RuntimeError("no int")


class Opaque:
    """Not a seed random takes (it raises TypeError), and no repr either."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def seed(how: str) -> None:
    if how == "random":
        random.seed(0)
        random.seed("text seed")
        random.seed(b"\x00\xff")
        random.seed(None)
        random.seed(2**300 + 1)
        random.seed(1.5)
        random.seed(7)
    elif how == "numpy":
        np.random.seed(42)
        np.random.seed([1, 2, 3])
        np.random.seed(np.uint32(7))
        np.random.default_rng(5)
        np.random.default_rng(np.random.SeedSequence(1234, spawn_key=(2,)))
        np.random.default_rng(None)
        np.random.seed(seed=11)
    elif how == "transformers":
        import transformers

        transformers.set_seed(123)  # seeds random and numpy itself: one seed, not three
    elif how == "loop":
        for i in range(250):
            random.seed(i)
    elif how == "hostile":
        random.seed(Hostile(3))
        random.seed(10**5000)
        np.random.seed(2**31)
    elif how == "raising":
        try:
            random.seed(Opaque())
        except TypeError as err:
            print(f"the script saw: {type(err).__name__}: {err}")
        random.seed(5)
    elif how == "torch":
        import torch

        torch.manual_seed(42)  # seeds every CUDA device itself: one seed
        torch.cuda.manual_seed_all(3)
    elif how == "lightning":
        import lightning

        used = lightning.seed_everything()  # no seed: Lightning picks one and returns it
        print(f"lightning used {used}")
        lightning.seed_everything(17)


def wrapped_now() -> list[str]:
    """The seeding functions that are still wrapped."""
    places = {
        "random.seed": (random, "seed"),
        "numpy.random.seed": (np.random, "seed"),
        "numpy.random.default_rng": (np.random, "default_rng"),
    }
    for module, name in (
        ("transformers", "set_seed"),
        ("transformers.trainer_utils", "set_seed"),
        ("torch", "manual_seed"),
        ("torch.cuda", "manual_seed_all"),
        ("lightning", "seed_everything"),
        ("lightning.fabric.utilities.seed", "seed_everything"),
    ):
        if module in sys.modules:
            places[f"{module}.{name}"] = (sys.modules[module], name)
    return sorted(
        where
        for where, (module, name) in places.items()
        if isinstance(vars(module).get(name), wrapt.FunctionWrapper)
    )


@recorded_run(outputs={"out": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--how", default="none")
    parser.add_argument("--out", default="draws.txt")
    args = parser.parse_args(argv)
    seed(args.how)
    Path(args.out).write_text(f"{random.random()!r} {np.random.random()!r}\n")
    return 0


if __name__ == "__main__":
    random.seed(1)  # before the run
    np.random.seed(1)
    code = main()
    random.seed(2)  # after the run
    print("still wrapped: " + json.dumps(wrapped_now()))
    sys.exit(code)
