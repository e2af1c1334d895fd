"""Corpora: MOS and encode-grid JSONL, score tables, BVI-DVC and KoNViD FR pairs."""
