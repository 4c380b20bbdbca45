#!/bin/sh
# Freezes netbind's binding CNI plugins into one self-contained bundle and assembles the installer
# image's root. Run in the build stage:  sh bundle.sh NETBIND_SITE PYINSTALLER_SITE ROOT
#   ROOT/opt/netbind-cni/bundle/   netbind-cni (PyInstaller bootloader), _internal/ (interpreter,
#                                  standard library, netbind), iproute2/ (ip, bridge, the libraries
#                                  and loader they were built with), PLUGINS, VERSION
#   ROOT/bin/                      static busybox and its applets (the installer's shell)
#   ROOT/usr/local/bin/netbind-cni-install
set -eu
site=$1 pyinstaller=$2 root=$3
here=$(dirname "$0")
work=$(mktemp -d)
NETBIND_SITE=$site PYTHONPATH=$pyinstaller python3 -m PyInstaller \
  --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/build" "$here/netbind-cni.spec"
bundle=$work/dist/netbind-cni
# the bundled libraries find each other, not the node's: the bootloader loads libpython by path, but
# what it, libpython and the extension modules need (libz, libexpat, libffi) is found by RUNPATH
patchelf --set-rpath '$ORIGIN/_internal' "$bundle/netbind-cni"
find "$bundle/_internal" -type f -name '*.so*' | while read -r elf; do
  sub=$(dirname "${elf#"$bundle/_internal/"}")     # . or python3.11/lib-dynload
  rel=""; [ "$sub" = . ] || rel=$(echo "/$sub" | sed 's|/[^/]*|/..|g')
  patchelf --set-rpath "\$ORIGIN$rel" "$elf"
done

# iproute2 as built, run through its own loader (netbind._iproute): the node's glibc plays no part
mkdir -p "$bundle/iproute2/lib"
for tool in ip bridge; do
  cp -L "$(command -v $tool)" "$bundle/iproute2/$tool"
  ldd "$(command -v $tool)" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u | while read -r lib; do
  cp -L "$lib" "$bundle/iproute2/lib/$(basename "$lib")"
done

# the plugin names the installer links, as the bundle itself knows them
PYTHONPATH=$site python3 -c 'from netbind.plugins.cni_bundle import PLUGINS; print(*PLUGINS)' > "$bundle/PLUGINS"
version=$(PYTHONPATH=$site python3 -c 'import netbind; print(netbind.__version__)')
digest=$(cd "$bundle" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
echo "$version-$digest" > "$bundle/VERSION"

mkdir -p "$root/opt/netbind-cni" "$root/bin" "$root/usr/local/bin" "$root/tmp"
chmod 1777 "$root/tmp"
mv "$bundle" "$root/opt/netbind-cni/bundle"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/install.sh" "$root/usr/local/bin/netbind-cni-install"
chmod 0755 "$root/usr/local/bin/netbind-cni-install"
rm -rf "$work"
