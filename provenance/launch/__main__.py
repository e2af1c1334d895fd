"""``python -m provenance.launch SCRIPT ARGS...``: see ``provenance.launch``."""

from provenance.launch import main

main()
