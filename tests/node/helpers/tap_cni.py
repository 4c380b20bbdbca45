#!/usr/bin/python3 -I
"""A CNI plugin that creates a plain tap named CNI_IFNAME in the pod (what a tap-making binding CNI
does for domainAttachmentType: tap). With --forgetful it reports success without creating the tap
(a broken plugin on a migration target: libvirt then finds no tap)."""
import json
import os
import subprocess
import sys

conf = json.load(sys.stdin)
command = os.environ.get("CNI_COMMAND", "")
ifname, netns = os.environ.get("CNI_IFNAME", ""), os.environ.get("CNI_NETNS", "")
if command == "VERSION":
    print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]}))
    sys.exit(0)
ip = ["nsenter", f"--net={netns}", "ip"]
if command == "ADD":
    if "--forgetful" not in sys.argv:
        for args in (["tuntap", "add", "dev", ifname, "mode", "tap"], ["link", "set", ifname, "up"]):
            proc = subprocess.run(ip + args, capture_output=True, text=True)
            if proc.returncode != 0:
                print(json.dumps({"cniVersion": conf["cniVersion"], "code": 11, "msg": proc.stderr.strip()}))
                sys.exit(1)
    print(json.dumps({"cniVersion": conf["cniVersion"], "interfaces": [{"name": ifname, "sandbox": netns}]}))
elif command == "DEL" and netns and os.path.exists(netns):
    subprocess.run(ip + ["link", "del", ifname], capture_output=True)
