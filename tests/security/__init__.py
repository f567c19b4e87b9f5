"""Regression tests for every attack on the trust boundary we know of (issue 10): each one
against a real server on 127.0.0.1, a real TUI or the real CLI."""
