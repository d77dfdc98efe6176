#!/usr/bin/python3
"""Drains and undrains a VW Manager's host with python3-zeep (WS-RP SetResourceProperties).

zeep loads the WorkspaceManagerService WSDL from its live ?wsdl URL (WSRF 1.2, or GT 4.0
with ?wsdl&dialect=gt4) and calls, through its service proxy:

  SetResourceProperties  Update mgr:Draining true
  GetResourceProperty    mgr:Draining
  SetResourceProperties  Update mgr:CPUs 64 (a fault: the host's other properties are read-only)
  SetResourceProperties  Update mgr:Draining maybe (a fault: not an xs:boolean)
  SetResourceProperties  Update mgr:Draining false
  GetResourceProperty    mgr:Draining

SetResourceProperties's content is a choice of Insert, Update and Delete, each holding
property elements (xs:any): zeep builds it from the WSDL's types, the property element
going in as the wildcard's value. Results go to stdout as one JSON object; anything
unexpected exits non-zero with the reason (and the last exchange) on stderr.
"""

import argparse
import json
import os
import sys

from lxml import etree
import zeep.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zeep_client  # noqa: E402
from zeep_client import DIALECTS, Failure, values  # noqa: E402
from zeep_manager import MGR, ManagerClient  # noqa: E402


class DrainClient(ManagerClient):
    REQUIRED_OPS = ("GetResourceProperty", "SetResourceProperties")


def update(c, local, value):
    """SetResourceProperties with one Update of mgr:local to value."""
    prop = etree.Element("{%s}%s" % (MGR, local), nsmap={"mgr": MGR})
    prop.text = value
    update_type = c.client.get_element("{%s}Update" % c.d["rp"]).type
    return c.call("SetResourceProperties", None, _value_1=[{"Update": update_type(_value_1=[prop])}])


def draining(c):
    got = c.call("GetResourceProperty", None, "mgr:Draining")
    return values(c, got).get("{%s}Draining" % MGR, [])


def run(c):
    out = {"dialect": c.dialect}
    update(c, "Draining", "true")
    out["afterDrain"] = draining(c)
    out["readOnlyFault"] = fault(c, lambda: update(c, "CPUs", "64"))
    out["notBooleanFault"] = fault(c, lambda: update(c, "Draining", "maybe"))
    out["afterFaults"] = draining(c)
    update(c, "Draining", "false")
    out["afterUndrain"] = draining(c)
    return out


def fault(c, call):
    try:
        call()
    except zeep.exceptions.Fault as f:
        return c.parse_fault(f)
    raise Failure("%s succeeded but a fault was expected" % c.current)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsdl", required=True, help="the Manager's live WSDL URL")
    p.add_argument("--dialect", required=True, choices=sorted(DIALECTS))
    args = p.parse_args()
    clients = []
    try:
        c = DrainClient(args.wsdl, args.dialect)
        clients.append(c)
        out = run(c)
    except Failure as e:
        print("zeep_drain: %s" % e, file=sys.stderr)
        zeep_client.dump_last(clients)
        return 1
    except zeep.exceptions.Fault as f:
        print("zeep_drain: unexpected fault %s: %s" % (f.code, f.message), file=sys.stderr)
        zeep_client.dump_last(clients)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
