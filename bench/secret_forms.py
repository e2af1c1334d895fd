"""Redaction measured on the corpus of secret forms (tests/data/secret_forms.jsonl): how many
forms leak a secret, and how many lose an ordinary value, through this package's redaction and
through detect-secrets on its own (every default plugin, each secret it reports replaced).

    python bench/secret_forms.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provenance.record.redact import redact_text
from tests.secret_forms import FORMS, catalogue_alone, leaking, overhidden


def main() -> None:
    holding = sum(1 for f in FORMS if f["secrets"])
    print(f"{len(FORMS)} forms: {holding} holding a secret, {len(FORMS) - holding} not")
    print(f"{'redaction':<24}{'forms leaking':>14}{'ordinary values hidden':>24}")
    for name, redact in [("provenance", redact_text), ("detect-secrets alone", catalogue_alone)]:
        print(f"{name:<24}{len(leaking(redact)):>14}{len(overhidden(redact)):>24}")


if __name__ == "__main__":
    main()
