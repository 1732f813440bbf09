"""The real node's own iptables chains as data (pure): pods and sandbox addresses stay on this
machine. :func:`iptables_setup` and :func:`iptables_teardown` are exact inverses (create chain,
append rules, insert the jump / delete the jump, flush, delete the chain); applied by
:mod:`kubellm.sandbox.hostnet`."""

from __future__ import annotations

from dataclasses import dataclass

from kubellm.sandbox import pki
from kubellm.sandbox.nodeconfig import BRIDGE, POD_CIDR

#: Ranges that must never leave this machine (kwok's fake pods/node, Services, our pods).
NEVER_ROUTED_OUT = ("10.244.0.0/16", "10.254.0.1/32", pki.SERVICE_CIDR, POD_CIDR)
#: Chain-name prefixes of what kubelet, kube-proxy and the portmap plugin create; set-up refuses
#: to start when any exists already (another Kubernetes here), so tear-down may remove them all.
FOREIGN_CHAIN_PREFIXES = ("KUBE-", "CNI-")
OWN_CHAIN_PREFIX = "KUBELLM-"


@dataclass(frozen=True)
class Chain:
    """One chain of ours: ``table``, its ``name``, the built-in chain that jumps to it, rules."""

    table: str
    name: str
    hook: str
    rules: tuple[tuple[str, ...], ...]


def iptables_rules() -> tuple[Chain, ...]:
    """The sandbox's own filtering: pods and sandbox addresses stay on this machine.

    All in ``mangle``, which runs before kube-proxy's and the kubelet's ``filter``/``nat`` rules
    and which neither touches, so no later ``-I`` of theirs can jump the queue.
    """
    never = tuple(("-d", cidr, "-j", "DROP") for cidr in NEVER_ROUTED_OUT)
    return (
        Chain(
            "mangle",
            "KUBELLM-SANDBOX-FWD",
            "FORWARD",
            (
                # Pod traffic leaves only back onto the bridge: never through the host uplink.
                ("-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"),
            ),
        ),
        Chain(
            "mangle",
            "KUBELLM-SANDBOX-OUT",
            "POSTROUTING",
            (("-o", BRIDGE, "-j", "RETURN"), ("-o", "lo", "-j", "RETURN"), *never),
        ),
        Chain(
            "mangle",
            "KUBELLM-SANDBOX-IN",
            "PREROUTING",
            (
                # The node IP and pod addresses are reachable from the bridge and loopback only.
                ("-i", BRIDGE, "-j", "RETURN"),
                ("-i", "lo", "-j", "RETURN"),
                ("-d", POD_CIDR, "-j", "DROP"),
            ),
        ),
    )


def iptables_setup(chains: tuple[Chain, ...]) -> list[list[str]]:
    """iptables argument lists that create ``chains`` and hook them in first."""
    cmds: list[list[str]] = []
    for c in chains:
        cmds.append(["-t", c.table, "-N", c.name])
        cmds += [["-t", c.table, "-A", c.name, *rule] for rule in c.rules]
        cmds.append(["-t", c.table, "-I", c.hook, "1", "-j", c.name])
    return cmds


def iptables_teardown(chains: tuple[Chain, ...]) -> list[list[str]]:
    """The inverse of :func:`iptables_setup`, in reverse order (each step may fail if absent)."""
    cmds: list[list[str]] = []
    for c in reversed(chains):
        cmds.append(["-t", c.table, "-D", c.hook, "-j", c.name])
        cmds.append(["-t", c.table, "-F", c.name])
        cmds.append(["-t", c.table, "-X", c.name])
    return cmds
