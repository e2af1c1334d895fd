"""Derived tables: MOS labels, second-opinion and saliency features joined to feature tables,
and the audit of how those signals mix (ADR-0661, ADR-0668)."""
