"""Handles credentials every way a real training or upload script does, so none may leak.

It parses with ``parse_known_args`` (the W&B key is left over), takes a URL with a password, a
``NAME=value`` pair and a JSON option, records service settings read from the environment, gates
an upload, and with ``--fail`` raises an error whose message holds the password and a bearer
token. ``--plain`` writes the model as text, so the block cannot go into it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True, help="the model, as JSON")
    parser.add_argument("-p", "--password", dest="pw")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--hf-token")
    parser.add_argument("--db-url")
    parser.add_argument("--env", action="append", default=[], help="NAME=value")
    parser.add_argument("--extra", type=json.loads, default={})
    parser.add_argument("--tokenizer", default="bpe")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--plain", action="store_true")
    return parser


@recorded_run(outputs={"model": "out"}, embed_into="model")
def main(argv: list[str] | None = None) -> int:
    args, _rest = build_parser().parse_known_args(argv)
    if args.plain:
        args.out.write_text("weights 1 2\n")
    else:
        args.out.write_text(json.dumps({"weights": [1, 2]}))
    run = current_run()
    run.record(
        service_api_key=os.environ.get("FAKE_SERVICE_KEY"),
        upload={"endpoint": "https://hub.example/models", "db_password": os.environ.get("FAKE_DB")},
        tokenizer=args.tokenizer,
    )
    run.gate("upload", True, auth_token=os.environ.get("FAKE_GATE_TOKEN"), retries=2)
    if args.fail:
        bearer = os.environ.get("FAKE_BEARER")
        raise RuntimeError(
            f"upload refused for password {args.pw}; sent Authorization: Bearer {bearer}"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError:
        sys.exit(1)  # the record holds the error; its message holds credentials
