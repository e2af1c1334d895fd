"""The stores beside the records: the digest cache, the lineage index and the walk that feeds it."""
