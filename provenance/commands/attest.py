"""``provenance attest ARTIFACT --key PRIVATE.pem``: sign an artifact and its run's provenance.

Writes two files beside the artifact (a file, or a model folder), each atomically:

- ``ARTIFACT.sig``: its OpenSSF model signature, made by the model-signing library, which
  ``model_signing verify key ARTIFACT --signature ARTIFACT.sig --public_key PUBLIC.pem`` checks;
- ``ARTIFACT.intoto.jsonl``: the run's SLSA provenance v1 (as ``export --format slsa`` makes it)
  in an in-toto Statement about the artifact's bytes (sha256, and blake3 beside it), in a DSSE
  envelope signed with the same key; ``provenance verify ARTIFACT --attestation ...`` checks it.

The key is an elliptic-curve PEM private key (P-256, P-384 or P-521). A password never comes
from the command line: ``--password-env NAME`` reads it from that environment variable, else it
is asked for when a terminal is attached.

Nothing is signed that this tool cannot vouch for: a record that ``verify`` finds a problem
with, a run that did not succeed, one still under way or lost, or a failed gate (unless
``--allow-failed``, which the statement then says). Needs the sign extra:
``pip install 'provenance-sidecar[sign]'``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    add_outside_root,
    warn,
)
from provenance.records import load
from provenance.text import plural, printable


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "attest",
        "sign an artifact and its run's provenance (the sign extra)",
        __doc__,
        run,
        examples=[
            "provenance attest model.onnx --key signing.pem",
            "SIGNING_PASSWORD=... provenance attest model/ --key signing.pem "
            "--password-env SIGNING_PASSWORD",
            "provenance verify model.onnx --attestation model.onnx.intoto.jsonl "
            "--public-key signing.pub.pem",
        ],
    )
    parser.add_argument("artifact", help="the artifact (a file or a model folder)")
    parser.add_argument("--key", required=True, help="an elliptic-curve PEM private key")
    parser.add_argument(
        "--password-env",
        metavar="NAME",
        help="the environment variable holding the key's password",
    )
    parser.add_argument(
        "--allow-failed",
        action="store_true",
        help="attest a run whose gates failed; the statement names them",
    )
    add_outside_root(parser)


def password_for(key: str, env: str | None) -> bytes | None:
    """The key's password: from the variable ``env`` names, else asked for on a terminal when
    the key is password-protected, else None."""
    from provenance.emit.attestation import KeyError_, is_encrypted

    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise KeyError_(f"--password-env {env}: that environment variable is not set")
        return value.encode("utf-8")
    if is_encrypted(key) and sys.stdin.isatty():
        return getpass.getpass(f"password for {key}: ").encode("utf-8")
    return None


def run(args: argparse.Namespace) -> int:
    from provenance.emit import attestation

    try:
        attestation.require_extra()
        password = password_for(args.key, args.password_env)
        record = load(args.artifact, args.root)
        done = attestation.attest(
            record,
            Path(args.artifact),
            args.key,
            password,
            allow_failed=args.allow_failed,
            outside_root=args.outside_root,
        )
    except attestation.MissingExtra as err:
        warn(f"attest: {err}")
        return EXIT_USAGE
    except attestation.KeyError_ as err:
        warn(str(err))
        return EXIT_USAGE
    except attestation.Refusal as err:
        warn(f"not attested: {err}")
        return EXIT_FINDING
    print(printable(f"{done.signature}: model signature"))
    print(
        printable(
            f"{done.attestation}: SLSA provenance, {plural(done.subjects, 'subject')}, signed"
        )
    )
    return EXIT_OK
