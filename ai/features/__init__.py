"""Feature extraction and feature tables: libvmaf's JSON, per-clip and per-frame tables, audits."""
