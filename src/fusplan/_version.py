"""The fusplan version (read by hatch at build time and by every module that records it)."""
__version__ = "0.1.0"
