"""The package version (one place; the project metadata says the same)."""

__version__ = "0.1.0"
