"""Connector entrypoint and image tests."""
