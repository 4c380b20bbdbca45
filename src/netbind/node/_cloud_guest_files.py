"""The reference cloud guest's own files (the rest of it is Debian packages), kept as text so the
image build hashes them. ``nb-report`` speaks the tiny guest's serial protocol (see ``_guest_init``):
BOOT, LINK on carrier changes, LEASE for each address systemd-networkd takes by DHCP, ADDR for static
ones, READY once cloud-init's final stage is done. ``nb-echo`` is a TCP echo service on ports 7 and 8080 (the
port the examples forward) for tests of traffic into the guest (socket-activated ``cat``: no program of ours)."""
from __future__ import annotations

# path in the guest -> (mode, text)
FILES: dict[str, tuple[int, str]] = {
    'usr/local/sbin/nb-report': (0o755, r'''#!/bin/sh
# netbind reference cloud guest: reports what systemd-networkd does on the serial console in the
# tiny guest's protocol (NB: BOOT, LINK, LEASE, ADDR, READY), so `netbind up --wait`, `status` and
# `migrate` read both guests alike. `nb-report watch` follows links and addresses; `nb-report
# ready` runs once cloud-init's final stage is done.
con=/dev/ttyS0
now() { cut -d' ' -f1 /proc/uptime; }
say() { echo "NB: $*" > "$con"; }
mac() { cat "/sys/class/net/$1/address" 2>/dev/null; }
v4() { ip -4 -o addr show scope global 2>/dev/null | awk '{print $2}' | sort -u | tr '\n' ',' | sed 's/,$//'; }

case "$1" in
ready)
  say "READY uptime=$(now) ifaces=$(v4) guest=cloud"
  exit 0 ;;
watch) ;;
*) echo "usage: nb-report watch|ready" >&2; exit 2 ;;
esac

say "BOOT uptime=$(now) kernel=$(uname -r) guest=cloud"
state_dir=/run/nb-report; mkdir -p "$state_dir"
ip -o monitor link address | while read -r line; do
  set -- $line
  deleted=
  if [ "$1" = Deleted ]; then deleted=yes; shift; fi
  iface=${2%:}; iface=${iface%@*}
  [ "$iface" = lo ] && continue
  case "$3" in
  inet)
    ip=${4%/*}; mask=${4#*/}
    if [ -n "$deleted" ]; then
      [ "$(cat "$state_dir/$iface.ip" 2>/dev/null)" = "$ip" ] && rm -f "$state_dir/$iface.ip"
      continue
    fi
    case "$line" in *" scope global"*) ;; *) continue ;; esac
    # a DHCP address is the one networkd's lease file holds (an infinite lease, as passt gives,
    # carries no "dynamic" flag); networkd writes the file as it configures the address
    lease_file=/run/systemd/netif/leases/$(cat "/sys/class/net/$iface/ifindex")
    n=0
    while [ $n -lt 20 ] && ! grep -qx "ADDRESS=$ip" "$lease_file" 2>/dev/null; do sleep 0.1; n=$((n+1)); done
    if grep -qx "ADDRESS=$ip" "$lease_file" 2>/dev/null; then
      get() { sed -n "s/^$1=//p" "$lease_file" | head -n1; }
      event=bound; [ "$(cat "$state_dir/$iface.ip" 2>/dev/null)" = "$ip" ] && event=renew
      echo "$ip" > "$state_dir/$iface.ip"
      router=$(get ROUTER); router=${router%% *}
      say "LEASE iface=$iface ip=$ip mask=$mask router=$router dns=$(get DNS | tr ' ' ,) mac=$(mac "$iface") lease=$(get LIFETIME) mtu=$(get MTU) serverid=$(get SERVER_ADDRESS) event=$event uptime=$(now)"
    else
      say "ADDR iface=$iface ip=$ip mask=$mask mac=$(mac "$iface") source=static"
    fi ;;
  inet6) ;;
  *)
    [ -n "$deleted" ] && continue
    case "$line" in *LOWER_UP*) carrier=up ;; *) carrier=down ;; esac
    [ "$(cat "$state_dir/$iface.link" 2>/dev/null)" = "$carrier" ] && continue
    first=; [ -e "$state_dir/$iface.link" ] || first=yes
    echo "$carrier" > "$state_dir/$iface.link"
    [ -n "$first" ] && [ "$carrier" = down ] && continue
    say "LINK iface=$iface state=$carrier uptime=$(now)" ;;
  esac
done
'''),
    'etc/systemd/system/nb-report.service': (0o644, r'''[Unit]
Description=netbind: report links and DHCP leases on the serial console
DefaultDependencies=no
After=systemd-udevd.service
Before=systemd-networkd.service

[Service]
ExecStart=/usr/local/sbin/nb-report watch
Restart=always

[Install]
WantedBy=sysinit.target
'''),
    'etc/systemd/system/nb-ready.service': (0o644, r'''[Unit]
Description=netbind: report READY once cloud-init is done
After=cloud-final.service systemd-networkd-wait-online.service
Wants=cloud-final.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/nb-report ready

[Install]
WantedBy=cloud-init.target
'''),
    'etc/systemd/system/nb-echo.socket': (0o644, r'''[Unit]
Description=netbind: TCP echo (RFC 862) on port 7, and on 8080 (the examples' forwarded port)

[Socket]
ListenStream=7
ListenStream=8080
Accept=yes

[Install]
WantedBy=sockets.target
'''),
    'etc/systemd/system/nb-echo@.service': (0o644, r'''[Unit]
Description=netbind: TCP echo connection

[Service]
ExecStart=/bin/cat
StandardInput=socket
StandardOutput=socket
'''),
    'etc/cloud/cloud.cfg.d/90-netbind.cfg': (0o644, r'''# netbind reference cloud guest: KubeVirt's cloud-init sources, rendered for systemd-networkd
datasource_list: [NoCloud, ConfigDrive, None]
system_info:
  network:
    renderers: [networkd]
locale: C.UTF-8
'''),
}

# systemd units enabled in the image (besides systemd-networkd)
UNITS = ("nb-report.service", "nb-ready.service", "nb-echo.socket")
