"""Worked solutions of the lesson exercises, one module per topic (see README.md)."""
