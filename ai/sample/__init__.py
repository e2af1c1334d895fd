"""The bundled sample data: a seeded generator of a small, realistic corpus."""
