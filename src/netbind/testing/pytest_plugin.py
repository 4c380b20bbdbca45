"""pytest plugin registered through the ``pytest11`` entry point: fixtures for plugin authors.

Fixtures are added by the modules that own them (netns pair, sidecar runner, ...); this module
only imports them so that ``pip install netbind`` makes them available to any test suite.
"""
from __future__ import annotations

from netbind.testing.hooks import hook_sidecar, hook_sockets_dir  # noqa: F401
from netbind.testing.netns import netns, netns_pair  # noqa: F401
