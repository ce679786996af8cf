"""The package version (its own module, so library code can record it without importing the package)."""
__all__ = ["__version__"]

__version__ = "0.1.0"
