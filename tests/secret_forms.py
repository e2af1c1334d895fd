"""The corpus of forms a secret takes (data/secret_forms.jsonl), and two ways to redact it
measured on the same forms: this package's and detect-secrets' on its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from provenance.record.redact import REDACTED

FORMS_FILE = Path(__file__).parent / "data" / "secret_forms.jsonl"
FORMS: list[dict[str, Any]] = [
    json.loads(line) for line in FORMS_FILE.read_text("utf-8").splitlines() if line
]
Redact = Callable[[str], str]


def catalogue_alone(text: str) -> str:
    """``text`` with each secret that detect-secrets reports (every default plugin, as
    ``detect-secrets scan`` runs them) replaced."""
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    with default_settings():
        found = {
            secret.secret_value
            for line in text.splitlines() or [text]
            for secret in scan_line(line)
            if secret.secret_value
        }
    for value in sorted(found, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def leaking(redact: Redact) -> list[str]:
    """The forms whose secret is still in the text ``redact`` makes of them."""
    return [f["note"] for f in FORMS if any(s in redact(f["text"]) for s in f["secrets"])]


def overhidden(redact: Redact) -> list[str]:
    """The forms whose ordinary values ``redact`` hides."""
    return [f["note"] for f in FORMS if any(k not in redact(f["text"]) for k in f.get("keep", []))]
