"""A script configured the way nanoGPT's train.py is: module globals, then an exec-style
configurator that reads config files and --key=value overrides into them."""

import os
from pathlib import Path

batch_size = 12
learning_rate = 6e-4
out = "ckpt.txt"
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "nano_configurator.py")) as handle:
    exec(handle.read())
Path(out).write_text(f"batch_size={batch_size} learning_rate={learning_rate}\n")
