"""nanoGPT's configurator, as train.py execs it: ``python train.py config/x.py --key=value``."""

import sys
from ast import literal_eval

for arg in sys.argv[1:]:
    if "=" not in arg:
        if arg.startswith("--"):
            raise ValueError(f"not a config file or an override: {arg}")
        with open(arg) as config:
            exec(config.read())
    else:
        if not arg.startswith("--"):
            raise ValueError(f"an override is --key=value: {arg}")
        key, val = arg.split("=", 1)
        key = key[2:]
        if key not in globals():
            raise ValueError(f"Unknown config key: {key}")
        try:
            attempt = literal_eval(val)
        except (SyntaxError, ValueError):
            attempt = val
        globals()[key] = attempt
