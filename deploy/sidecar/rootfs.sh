#!/bin/sh
# Gathers the root of a Python hook sidecar image into DIR: the interpreter and its standard library,
# what pip installed under /install, exactly the shared libraries all of it loads (by ldd), and the
# account KubeVirt runs sidecars as (107). No shell, package manager or other tools: the image holds
# what the sidecar runs and nothing else. Run in the build stage:  sh rootfs.sh DIR
set -eu
out=$1
python=$(readlink -f "$(command -v python3)")          # /usr/bin/python3.11
stdlib=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
mkdir -p "$out/tmp" "$out/etc" "$out/usr/bin"
chmod 1777 "$out/tmp"
cp -a --parents "$python" "$stdlib" "$out"
ln -sf "$(basename "$python")" "$out/usr/bin/python3"
# parts of the standard library a sidecar never imports (tests, GUI, installers, 2to3)
for unused in test idlelib tkinter turtledemo ensurepip lib2to3 pydoc_data distutils/tests unittest/test \
              config-3.11-x86_64-linux-gnu; do
  rm -rf "${out:?}$stdlib/$unused"
done
# extension modules of databases, terminals and tests (they would pull sqlite, Berkeley DB, Kerberos, ncurses)
for unused in _sqlite3 _dbm _gdbm nis _curses _curses_panel readline _tkinter _ctypes_test _testcapi \
              _testinternalcapi _testbuffer _testimportmultiple _testmultiphase _xxtestfuzz xxlimited xxlimited_35; do
  rm -f "$out$stdlib"/lib-dynload/"$unused".cpython-*.so
done
cp -a /install/. "$out/"
find "$out" -type f \( -name '*.so' -o -name '*.so.*' -o -path "$out$python" \) | while read -r elf; do
  ldd "$elf" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$out"
done
printf 'root:x:0:0:root:/:/sbin/nologin\nqemu:x:107:107:qemu:/:/sbin/nologin\n' > "$out/etc/passwd"
printf 'root:x:0:\nqemu:x:107:\n' > "$out/etc/group"
