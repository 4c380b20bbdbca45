"""One executable for all of netbind's binding CNI plugins, chosen by the name it is run as.

The CNI installer image (``deploy/cni``) freezes this module into a self-contained bundle (its own
interpreter and libraries, and iproute2) and links each plugin name in /opt/cni/bin to it, the way
busybox serves its applets: one copy on the node, one start-up path, each plugin exactly the code
the tests run. ``netbind-cni PLUGIN ...`` runs a plugin by name, for a look at the bundle by hand.
"""
from __future__ import annotations

import importlib
import os
import sys

# executable name -> module whose ``main`` is that plugin (the names pyproject's scripts give them)
PLUGINS = {
    "netbind-cni-passt-binding": "netbind.plugins.passt.cni",
    "netbind-cni-macvtap": "netbind.plugins.macvtap.cni",
    "netbind-cni-bridge-binding": "netbind.plugins.bridge.cni",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    name = os.path.basename(argv[0])
    if name not in PLUGINS and len(argv) > 1 and argv[1] in PLUGINS:
        name = argv[1]
        del argv[1]
    module = PLUGINS.get(name)
    if module is None:
        sys.stderr.write(f"{name}: netbind's CNI plugin bundle; run it as one of {', '.join(PLUGINS)}"
                         " (a link to it with that name, as the installer makes in /opt/cni/bin)\n")
        raise SystemExit(2)
    importlib.import_module(module).main()


if __name__ == "__main__":
    main()
