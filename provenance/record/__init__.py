"""The record: built from what a run was told and measured, redacted, normalized, checked
against its schema, kept within what a reader takes, and written."""
