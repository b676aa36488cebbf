"""Documentation checks."""
