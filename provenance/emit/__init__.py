"""What goes out of a run to other systems: OpenLineage events."""
