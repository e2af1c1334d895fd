"""``python -m provenance.launch SCRIPT ARGS...``: see ``provenance.launch``."""

from provenance.launch.runner import main

main()
