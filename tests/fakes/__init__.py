"""Test-only helpers around the stand-ins of ``standins/``."""
