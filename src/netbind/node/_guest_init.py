"""The tiny guest's shell programs (busybox sh), kept as text so the image build hashes them.

Serial protocol, one line per event, ``NB: WORD key=value ...`` (values never contain spaces):
  BOOT uptime= kernel=            init started
  ADDR iface= ip= mask= mac= source=static
  LEASE iface= ip= mask= router= dns= mac= lease= mtu= serverid= event=bound|renew uptime=
  LEASEFAIL iface= event=
  IFACE iface= mac= config=none   a NIC that the network-config does not list
  READY uptime= ifaces=           every DHCP NIC has a lease (or nb.ready_timeout passed)
  WARN ...  / ERROR ...
  LINK iface= state=up|down changes= uptime= [missed=yes]
                                  carrier change (a flap between two polls: missed=yes); "up" restarts
                                  DHCP from INIT (a fresh DISCOVER), as networkd and NetworkManager do
  ADDR6 iface= ip= mask= router= source=ra   a global IPv6 address and default route (from RAs)
  ECHO port=                      TCP echo server listening (nb.echo=PORT)
  PROBE target= ok=yes|no reply=  one TCP exchange from the guest (nb.probe=HOST:PORT)

Link-refresh after a migration (KubeVirt: link down, 100 ms, up) helps only a guest whose DHCP
client reacts to carrier. This init restarts DHCP from INIT on carrier-up (a fresh DISCOVER). Real
guests, from their documentation (not tested on this machine): systemd-networkd drops the lease on
carrier loss and restarts DHCP on carrier gain (first an INIT-REBOOT REQUEST for the old address,
which the new pod's server NAKs, then DISCOVER), unless IgnoreCarrierLoss=/KeepConfiguration= keep
it; NetworkManager waits for carrier to stay down (its carrier-wait, seconds) before deactivating,
so a 100 ms flap can pass unnoticed and the old address stays (the issue's user reports);
ifupdown + ISC dhclient and Alpine's busybox udhcpc ignore carrier altogether: nothing happens
until T1 renewal or a manual renew, and a busybox RENEW (SIGUSR1) with the old address falls back
to DISCOVER only after its retries (migration notes: 4.2 s).
"""
from __future__ import annotations

# (module name, path under lib/modules/<kver>/kernel/), in load order. Debian ships no modules.dep
# in the package (depmod makes it at install time), so the order comes from each module's depends=.
MODULES: tuple[tuple[str, str], ...] = (
    ("virtio_ring", "drivers/virtio/virtio_ring.ko"),
    ("virtio", "drivers/virtio/virtio.ko"),
    ("virtio_pci_modern_dev", "drivers/virtio/virtio_pci_modern_dev.ko"),
    ("virtio_pci_legacy_dev", "drivers/virtio/virtio_pci_legacy_dev.ko"),
    ("virtio_pci", "drivers/virtio/virtio_pci.ko"),
    ("failover", "net/core/failover.ko"),
    ("net_failover", "drivers/net/net_failover.ko"),
    ("virtio_net", "drivers/net/virtio_net.ko"),
)

INIT = r"""#!/bin/busybox sh
# PID 1 of the netbind tiny guest: NICs up from /etc/nb-net.conf, report, then watch carriers.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /run/nb /tmp /etc
say() { echo "NB: $*"; }
now() { read u _ < /proc/uptime; echo $u; }
say "BOOT uptime=$(now) kernel=$(uname -r)"
for m in @MODULES@; do insmod /lib/modules/$m.ko || say "ERROR insmod module=$m"; done
ready_timeout=20; echo_port=; probe=
for a in $(cat /proc/cmdline); do case $a in
  nb.ready_timeout=*) ready_timeout=${a#*=};;
  nb.echo=*) echo_port=${a#*=};;
  nb.probe=*) probe=${a#*=};;
esac; done
ip link set lo up
conf=/etc/nb-net.conf
[ -f $conf ] || echo dhcp-all > $conf
h=$(sed -n 's/^hostname //p' $conf); [ -n "$h" ] && hostname "$h"
# virtio-net probes its devices when the module loads; give a slow (TCG) boot a moment anyway
i=0; while ! ls /sys/class/net | grep -q '^eth' && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done

rule_for() {  # IFACE MAC -> the settings of the first matching "nic" line ("" if none)
  if grep -q '^dhcp-all' $conf; then echo "dhcp4=yes"; return; fi
  while read kind rest; do
    [ "$kind" = nic ] || continue
    mm=; mn=
    for kv in $rest; do case $kv in match_mac=*) mm=${kv#*=};; match_name=*) mn=${kv#*=};; esac; done
    [ -n "$mm" ] && [ "$mm" != "$2" ] && continue
    if [ -n "$mn" ]; then case $1 in $mn) ;; *) continue;; esac; fi
    echo "$rest"; return
  done < $conf
}
start_dhcp() {
  rm -f /run/nb/lease-$1
  udhcpc -f -i $1 -s /bin/nb-dhcp-event -t 3 -T 1 -A 1 >> /run/nb/udhcpc-$1.log 2>&1 &
  echo $! > /run/nb/udhcpc-$1.pid
}
stop_dhcp() {
  [ -f /run/nb/udhcpc-$1.pid ] && kill $(cat /run/nb/udhcpc-$1.pid) 2>/dev/null
  rm -f /run/nb/udhcpc-$1.pid /run/nb/lease-$1
}

all=
for path in /sys/class/net/*; do
  i=${path##*/}; [ "$i" = lo ] && continue
  r=$(rule_for $i $(cat $path/address))
  sn=; for kv in $r; do case $kv in set_name=*) sn=${kv#*=};; esac; done
  if [ -n "$sn" ] && [ "$sn" != "$i" ]; then ip link set $i name $sn && i=$sn; fi
  echo "$r" > /run/nb/rule-$i
  all="$all $i"
done
dhcp_ifaces=
for i in $all; do
  r=$(cat /run/nb/rule-$i); mac=$(cat /sys/class/net/$i/address)
  dhcp=no; addrs=; gw=; ns=; mtu=
  for kv in $r; do case $kv in
    dhcp4=*) dhcp=${kv#*=};; addresses=*) addrs=${kv#*=};; gateway4=*) gw=${kv#*=};;
    nameservers=*) ns=${kv#*=};; mtu=*) mtu=${kv#*=};;
  esac; done
  [ -n "$mtu" ] && ip link set $i mtu $mtu
  ip link set $i up
  for a in $(echo $addrs | tr , ' '); do
    ip addr add $a dev $i && say "ADDR iface=$i ip=${a%/*} mask=${a#*/} mac=$mac source=static"
  done
  [ -n "$gw" ] && { ip route add default via $gw dev $i || say "ERROR route iface=$i via=$gw"; }
  for n in $(echo $ns | tr , ' '); do echo "nameserver $n" >> /etc/resolv.conf; done
  [ -z "$r" ] && say "IFACE iface=$i mac=$mac config=none"
  if [ "$dhcp" = yes ]; then dhcp_ifaces="$dhcp_ifaces $i"; start_dhcp $i; fi
done

deadline=$(( $(now | cut -d. -f1) + ready_timeout ))
while :; do
  pending=; for i in $dhcp_ifaces; do [ -f /run/nb/lease-$i ] || pending="$pending $i"; done
  [ -z "$pending" ] && break
  if [ $(now | cut -d. -f1) -ge $deadline ]; then say "WARN no-lease ifaces=$(echo $pending | tr ' ' ,)"; break; fi
  sleep 0.1
done
# The carrier watch's baseline is taken before READY: a link change made as soon as READY is seen
# (a test's, or a migration's link refresh) then counts as a change, however slowly TCG runs on
for i in $all; do
  read c < /sys/class/net/$i/carrier; echo $c > /run/nb/carrier-$i
  read n < /sys/class/net/$i/carrier_changes; echo $n > /run/nb/changes-$i
done
say "READY uptime=$(now) ifaces=$(echo $all | tr ' ' ,)"
if [ -n "$echo_port" ]; then nc -ll -p $echo_port -e cat & say "ECHO port=$echo_port"; fi
if [ -n "$probe" ]; then
  # busybox nc may keep waiting after the peer closed (seen through passt): bound it
  r=$(echo "nb-probe from $(hostname)" | timeout 5 nc -w 3 ${probe%:*} ${probe##*:} 2>/dev/null | head -n 1 | sed 's/[^A-Za-z0-9._:=-]/_/g')
  if [ -n "$r" ]; then say "PROBE target=$probe ok=yes reply=$r"; else say "PROBE target=$probe ok=no reply="; fi
fi

# Carrier watch: KubeVirt's link-refresh after a migration sets the link down, waits 100 ms and
# sets it up; the guest answers with a fresh DHCP exchange from INIT (DISCOVER), as
# systemd-networkd and NetworkManager do. The kernel's carrier_changes counter catches a flap
# shorter than the poll interval (only the final carrier state would be seen otherwise).
while :; do
  for i in $all; do
    read c < /sys/class/net/$i/carrier || c=0
    read n < /sys/class/net/$i/carrier_changes || n=0
    read old < /run/nb/carrier-$i
    read oldn < /run/nb/changes-$i
    [ "$n" = "$oldn" ] && [ "$c" = "$old" ] && continue
    echo $c > /run/nb/carrier-$i; echo $n > /run/nb/changes-$i
    if [ "$c" = 1 ] && [ "$old" = 1 ]; then say "LINK iface=$i state=down changes=$n uptime=$(now) missed=yes"; fi
    if [ "$c" = 1 ]; then
      say "LINK iface=$i state=up changes=$n uptime=$(now)"
      case " $dhcp_ifaces " in *" $i "*) stop_dhcp $i; ip addr flush dev $i; start_dhcp $i;; esac
    else
      say "LINK iface=$i state=down changes=$n uptime=$(now)"
      case " $dhcp_ifaces " in *" $i "*) stop_dhcp $i; ip addr flush dev $i;; esac
    fi
  done
  # IPv6 comes from router advertisements (the kernel's SLAAC and default route): report it once,
  # looking every 0.5 s only (each ip(8) run is costly under TCG)
  tick=$(( (tick + 1) % 5 ))
  [ "$tick" = 0 ] && for i in $all; do
    case " $v6_reported " in *" $i "*) continue;; esac
    a=$(ip -6 addr show dev $i scope global 2>/dev/null | sed -n 's/.*inet6 \([^ ]*\).*/\1/p' | head -n 1)
    r=$(ip -6 route 2>/dev/null | sed -n "s/^default via \([^ ]*\) dev $i .*/\1/p" | head -n 1)
    if [ -n "$a" ] && [ -n "$r" ]; then
      say "ADDR6 iface=$i ip=${a%/*} mask=${a#*/} router=$r source=ra"; v6_reported="$v6_reported $i"
    fi
  done
  sleep 0.1
done
"""

DHCP_EVENT = r"""#!/bin/sh
# udhcpc event script: configure the NIC, then report on the console.
mac=$(cat /sys/class/net/$interface/address)
csv() { echo $* | tr ' ' ,; }
case "$1" in
  deconfig) ip addr flush dev $interface; ip link set $interface up ;;
  bound|renew)
    [ "$1" = bound ] && ip addr flush dev $interface
    ip addr replace $ip/${mask:-24} dev $interface
    [ -n "$mtu" ] && ip link set $interface mtu $mtu
    # (busybox's `ip route show default` lists every route: match the default one by hand)
    if [ -n "$router" ] && ! ip route | grep -q '^default'; then
      for r in $router; do ip route add default via $r dev $interface; break; done
    fi
    for d in $dns; do grep -qx "nameserver $d" /etc/resolv.conf 2>/dev/null || echo "nameserver $d" >> /etc/resolv.conf; done
    echo "NB: LEASE iface=$interface ip=$ip mask=$mask router=$(csv $router) dns=$(csv $dns) mac=$mac lease=$lease mtu=$mtu serverid=$serverid event=$1 uptime=$(cut -d" " -f1 /proc/uptime)" > /dev/console
    touch /run/nb/lease-$interface
    # one packet from the new address, as any real guest soon sends: a user-mode network stack
    # (passt) learns the guest's address from its traffic, not from the DHCP exchange
    for r in $router; do (ping -c 1 -W 1 $r >/dev/null 2>&1 &); break; done ;;
  leasefail|nak) echo "NB: LEASEFAIL iface=$interface event=$1" > /dev/console ;;
esac
exit 0
"""


def init_script() -> str:
    return INIT.replace("@MODULES@", " ".join(name for name, _ in MODULES))
