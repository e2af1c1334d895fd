"""The ai/ pipeline scripts: each an argparse main(argv) recorded with @recorded_run."""
