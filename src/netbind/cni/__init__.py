"""netbind.cni: write CNI plugins in Python (spec 0.1.0 ... 1.1.0), and run them.

Plugin side (this package; stdlib only, so a plugin starts in a few milliseconds)::

    from netbind.cni import Plugin, CNIError, Result

    plugin = Plugin("my-binding", about="my binding CNI")

    @plugin.add
    def add(args):
        ...                      # args.netns, args.ifname, args.netconf, args.prev_result
        return args.prev_result  # printed in the config's cniVersion

    main = plugin.main

Runtime side: ``netbind.cni.exec.CNIExecutor`` (libcni-like; imported separately).
"""
from netbind.cni._netns import NetNS
from netbind.cni._plugin import CmdArgs, Plugin
from netbind.cni._types import (
    CURRENT_VERSION,
    DNS,
    ERR_DECODING_FAILURE,
    ERR_INCOMPATIBLE_CNI_VERSION,
    ERR_INTERNAL,
    ERR_INVALID_ENVIRONMENT_VARIABLES,
    ERR_INVALID_NETWORK_CONFIG,
    ERR_IO_FAILURE,
    ERR_LIMITED_CONNECTIVITY,
    ERR_PLUGIN_NOT_AVAILABLE,
    ERR_TRY_AGAIN_LATER,
    ERR_UNKNOWN_CONTAINER,
    ERR_UNSUPPORTED_FIELD,
    SUPPORTED_VERSIONS,
    CNIError,
    Interface,
    IPConfig,
    Result,
    Route,
    parse_version,
    version_at_least,
)

__all__ = [
    "CURRENT_VERSION", "DNS", "ERR_DECODING_FAILURE", "ERR_INCOMPATIBLE_CNI_VERSION", "ERR_INTERNAL",
    "ERR_INVALID_ENVIRONMENT_VARIABLES", "ERR_INVALID_NETWORK_CONFIG", "ERR_IO_FAILURE",
    "ERR_LIMITED_CONNECTIVITY", "ERR_PLUGIN_NOT_AVAILABLE", "ERR_TRY_AGAIN_LATER",
    "ERR_UNKNOWN_CONTAINER", "ERR_UNSUPPORTED_FIELD", "SUPPORTED_VERSIONS", "CNIError", "CmdArgs",
    "IPConfig", "Interface", "NetNS", "Plugin", "Result", "Route", "parse_version",
    "version_at_least",
]
