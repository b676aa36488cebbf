"""The `finsight` command line: the one entry point engineers use (nothing below this layer imports it)."""
