"""Shared pieces of the front-end tests (command line, batch, demo), imported by tests/test_cli_*.py.

The test protocols are fixtures in ``conftest.py`` (``staged_gaussian_spec``, ``staged_protocol_file``).
"""
from __future__ import annotations

def no_registration(*args, **kwargs):
    """Stands in for ``fusplan.targeting.register`` where a command must not register."""
    raise AssertionError("registered although a cheap check should have failed first")


def no_simulation(*args, **kwargs):
    """Stands in for ``fusplan.planner.simulate`` where a command must not simulate."""
    raise AssertionError("simulated although a cheap check should have failed first")
