#!/bin/sh
# Installer (runs in the DaemonSet pod): copy netbind's CNI plugins onto the node.
# The plugins are Python: the pure-Python library goes to $LIB_DIR and each plugin becomes a thin
# launcher in $CNI_BIN_DIR that runs the node's python3 (>= 3.11) with -IS (isolated, no site
# scan: fast start, and nothing from the node's site-packages leaks in; one shebang argument, as
# Linux passes everything after the interpreter as a single argument). Files are replaced atomically, so a
# runtime never executes a half-written plugin.
set -eu
SRC_LIB=${SRC_LIB:-/opt/netbind/lib}            # inside the image
LIB_DIR=${LIB_DIR:-/host/opt/cni/netbind}        # node's /opt/cni/netbind, as mounted here
CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}    # node's /opt/cni/bin, as mounted here
NODE_LIB_PATH=${NODE_LIB_PATH:-/opt/cni/netbind} # the same library path as the node sees it
NODE_PYTHON=${NODE_PYTHON:-/usr/bin/python3}

rm -rf "$LIB_DIR.new"
mkdir -p "$(dirname "$LIB_DIR")" "$CNI_BIN_DIR"
cp -a "$SRC_LIB" "$LIB_DIR.new"
rm -rf "$LIB_DIR.old"
if [ -e "$LIB_DIR" ]; then mv "$LIB_DIR" "$LIB_DIR.old"; fi
mv "$LIB_DIR.new" "$LIB_DIR"
rm -rf "$LIB_DIR.old"

for entry in passt:netbind-cni-passt-binding macvtap:netbind-cni-macvtap bridge:netbind-cni-bridge-binding; do
  binding=${entry%%:*}; name=${entry#*:}
  tmp="$CNI_BIN_DIR/.$name.tmp"
  cat > "$tmp" <<LAUNCHER
#!$NODE_PYTHON -IS
import sys
sys.path.insert(0, "$NODE_LIB_PATH")
from netbind.plugins.$binding.cni import main
main()
LAUNCHER
  chmod 0755 "$tmp"
  mv -f "$tmp" "$CNI_BIN_DIR/$name"
  echo "installed $CNI_BIN_DIR/$name"
done
