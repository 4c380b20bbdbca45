#!/bin/sh
# Installer (runs in the DaemonSet pod): puts netbind's binding CNI plugins on the node.
#
# The image carries one self-contained bundle (deploy/cni/bundle.sh). It is copied, whole, into a
# versioned directory beside the plugins, $CNI_BIN_DIR/.netbind/<version>/, and each plugin name in
# $CNI_BIN_DIR becomes a relative link to its executable, so the plugins work wherever the node's
# /opt/cni/bin is mounted (Multus' thick daemon mounts it elsewhere). An upgrade never shows a
# runtime a half-written plugin: the new version is complete under a temporary name before one
# rename makes it visible, each link is replaced by a rename, and the version the links used
# before stays (a plugin already running from it finishes); older ones are removed.
set -eu
SRC=${SRC:-/opt/netbind-cni/bundle}              # inside the image
CNI_BIN_DIR=${CNI_BIN_DIR:-/host/opt/cni/bin}    # node's /opt/cni/bin, as mounted here
PLUGINS=$(cat "$SRC/PLUGINS")                   # the names the bundle serves

version=$(cat "$SRC/VERSION")
store=$CNI_BIN_DIR/.netbind
mkdir -p "$store"
if [ ! -x "$store/$version/netbind-cni" ]; then
  rm -rf "$store/.$version.tmp"
  cp -a "$SRC" "$store/.$version.tmp"
  rm -rf "$store/$version"
  mv "$store/.$version.tmp" "$store/$version"
  echo "copied bundle $version to $store/$version"
fi

previous=""
for name in $PLUGINS; do
  link=$CNI_BIN_DIR/$name
  if [ -L "$link" ]; then
    was=$(readlink "$link")
    case $was in .netbind/*/netbind-cni) was=${was#.netbind/}; previous=${was%/netbind-cni} ;; esac
  fi
  ln -sfn ".netbind/$version/netbind-cni" "$CNI_BIN_DIR/.$name.tmp"
  mv -f "$CNI_BIN_DIR/.$name.tmp" "$link"
  echo "installed $link -> .netbind/$version/netbind-cni"
done

for old in "$store"/* "$store"/.*.tmp; do
  [ -e "$old" ] || continue
  case ${old##*/} in "$version" | "$previous") continue ;; esac
  rm -rf "$old"
  echo "removed ${old##*/}"
done
