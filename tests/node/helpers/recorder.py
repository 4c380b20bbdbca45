#!/usr/bin/python3 -I
"""A CNI plugin that records each call ("COMMAND IFNAME NETWORK") in the file named by its "log"
config key, passes prevResult through, and fails ADD when "fail" is true."""
import json
import os
import sys

conf = json.load(sys.stdin)
command = os.environ.get("CNI_COMMAND", "")
if command == "VERSION":
    print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0"]}))
    sys.exit(0)
with open(conf["log"], "a") as log:
    log.write(f"{command} {os.environ.get('CNI_IFNAME')} {conf['name']}{' fail' if conf.get('fail') else ''}\n")
if command == "ADD":
    if conf.get("fail"):
        print(json.dumps({"cniVersion": conf["cniVersion"], "code": 11, "msg": "nb-recorder: told to fail"}))
        sys.exit(1)
    print(json.dumps(conf.get("prevResult") or {"cniVersion": conf["cniVersion"]}))
