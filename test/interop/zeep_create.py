#!/usr/bin/python3
"""Creates a workspace from a description file with python3-zeep, and reads it back.

  1. zeep loads the WorkspaceFactoryService WSDL from its live ?wsdl URL (WSRF 1.2, or
     GT 4.0 with ?wsdl&dialect=gt4), fetching every imported schema over HTTP.
  2. The description file (e.g. schema/samples/minimal-vm.xml) is parsed with the
     schema zeep built from the WSDL, as the vw:virtualWorkspace element: an element
     the schema does not allow fails here, in the client.
  3. Factory Create is called through zeep's service proxy with the parsed description,
     a Name and a RequestedLifetime; the response's wsa:RelatesTo and wsa:Action are
     checked, and the WorkspaceReference gives the workspace's address and its
     vw:WorkspaceKey (a W3C reference parameter, or a 2004/03 reference property).
  4. zeep loads the WorkspaceService WSDL from that address (?wsdl), and calls
     GetResourceProperty for vw:name and vw:state and GetMultipleResourceProperties for
     hw:hardware on the new workspace (through zeep_client.Client, which sends the
     addressing and key headers of each dialect; see zeep_client.py), and Place, which
     names the hosts that could deploy it.

Prints one JSON object; anything unexpected exits non-zero with the reason (and the
last exchange) on stderr.

The WorkspaceReference (vw:EndpointReferenceContainerType, a sequence of xs:any, lax)
is read here with processContents skip: zeep then hands back the EPR's children as lxml
elements, and this client checks that they are an EPR of the dialect itself, rather
than through the objects zeep would make of the WS-Addressing elements it knows.
"""

import argparse
import json
import os
import sys

from lxml import etree
import zeep
import zeep.exceptions
from zeep import xsd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zeep_client  # noqa: E402  (the dialects, headers, reply checks and value parsing)
from zeep_client import DIALECTS, VW, WSDL_NS, Failure, values, text  # noqa: E402

FAC = "http://vws.dev/ns/2026/factory"
HW = "http://vws.dev/ns/2026/workspace/hardware"


class FactoryClient(zeep_client.Client):
    """zeep_client.Client for the Factory: the same addressing, no resource key, and
    the portType's actions for Create rather than the WS-Resource operations."""

    REQUIRED_OPS = ("Create",)

    def __init__(self, wsdl_url, dialect):
        super().__init__(wsdl_url, dialect)
        # Raw elements for the EPR's children (see the module docstring).
        epr_type = self.client.get_type("{%s}EndpointReferenceContainerType" % VW)
        epr_type._element = xsd.Sequence([xsd.Any(min_occurs=0, max_occurs="unbounded", process_contents="skip")])

    def headers(self, operation, key):
        # The Factory is a singleton service: everything but the key header.
        return [h for h in super().headers(operation, "") if h.tag != "{%s}WorkspaceKey" % VW]


def read_description(c, path):
    """The description file as the vw:virtualWorkspace element zeep's schema parses."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True)
    node = etree.parse(path, parser).getroot()
    want = "{%s}virtualWorkspace" % VW
    if node.tag != want:
        raise Failure("%s holds %s, not %s" % (path, node.tag, want))
    element = c.client.get_element(want)
    try:
        return element.parse(node, c.client.wsdl.types)
    except (zeep.exceptions.XMLParseError, ValueError) as e:
        raise Failure("%s does not parse as %s with the WSDL's schema: %s" % (path, want, e))


def reference(c, ref):
    """Address and WorkspaceKey of a WorkspaceReference zeep parsed (its children as
    lxml elements, see the module docstring)."""
    wsa = c.d["wsa"]
    children = [e for e in (ref._value_1 or []) if isinstance(e, etree._Element)]
    address = next((e for e in children if e.tag == "{%s}Address" % wsa), None)
    if address is None:
        raise Failure("WorkspaceReference has no %s Address: %s" % (wsa, [e.tag for e in children]))
    holder = "ReferenceProperties" if c.dialect == "gt4" else "ReferenceParameters"
    refs = next((e for e in children if e.tag == "{%s}%s" % (wsa, holder)), None)
    key = None if refs is None else refs.find("{%s}WorkspaceKey" % VW)
    if key is None:
        raise Failure("WorkspaceReference has no %s with a vw:WorkspaceKey" % holder)
    return (address.text or "").strip(), (key.text or "").strip(), wsa


def run(args, clients):
    f = FactoryClient(args.factory_wsdl, args.dialect)
    clients.append(f)
    desc = read_description(f, args.description)
    created = f.call("Create", None, virtualWorkspace=desc, Name=args.name, RequestedLifetime=args.lifetime)
    address, key, epr_ns = reference(f, created.WorkspaceReference)
    out = {
        "dialect": args.dialect,
        "factoryAddress": f.address,
        "address": address,
        "key": key,
        "eprNamespace": epr_ns,
        "currentTime": text(created.CurrentTime),
        "terminationTime": text(created.TerminationTime),
        "lifetimeClamped": bool(created.LifetimeClamped),
        "description": {
            "ram": desc.hardware.RAM.size,
            "image": desc.software.image.name,
        },
    }

    wsdl = address + "?wsdl" + ("&dialect=gt4" if args.dialect == "gt4" else "")
    w = zeep_client.Client(wsdl, args.dialect)
    clients.append(w)
    w.client.set_ns_prefix("hw", HW)
    if w.address != address:
        raise Failure("the WorkspaceService WSDL at %s names address %s, the EPR %s" % (wsdl, w.address, address))

    name = w.call("GetResourceProperty", key, "vw:name")
    out["name"] = values(w, name).get("{%s}name" % VW, [])
    state = w.call("GetResourceProperty", key, "vw:state")
    out["state"] = values(w, state).get("{%s}state" % VW, [])

    multi = w.call("GetMultipleResourceProperties", key, ResourceProperty=["hw:hardware"])
    got = values(w, multi)
    if list(got) != ["{%s}hardware" % HW] or len(got["{%s}hardware" % HW]) != 1:
        raise Failure("GetMultipleResourceProperties hw:hardware returned %s" % sorted(got))
    # zeep parsed the value with the global hw:hardware element's type.
    hardware = multi[0] if isinstance(multi, list) else multi
    if isinstance(hardware, etree._Element):
        raise Failure("zeep did not parse hw:hardware with its schema type: %s" % etree.tostring(hardware).decode())
    out["hardware"] = {
        "ram": hardware.RAM.size,
        "cpus": hardware.CPU.count,
    }

    # Place: the hosts announced to the Repository that could deploy it, parsed with the
    # WSDL's PlacementCandidateType and UnsuitableHostType (zeep is strict).
    placed = w.call("Place", key)
    out["place"] = {
        "candidates": [c.HostName for c in (placed.Candidate or [])],
        "cachedBytes": [c.CachedBytes for c in (placed.Candidate or [])],
        "unsuitable": [u.HostName for u in (placed.Unsuitable or [])],
    }
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--factory-wsdl", required=True,
                   help="the Factory's live WSDL URL, e.g. http://host/wsrf/services/WorkspaceFactoryService?wsdl")
    p.add_argument("--dialect", required=True, choices=sorted(DIALECTS))
    p.add_argument("--description", required=True, help="workspace description file (a vw:virtualWorkspace document)")
    p.add_argument("--name", required=True, help="the new workspace's name")
    p.add_argument("--lifetime", default="PT2H", help="RequestedLifetime, an xs:duration")
    args = p.parse_args()
    clients = []
    try:
        out = run(args, clients)
    except Failure as e:
        print("zeep_create: %s" % e, file=sys.stderr)
        zeep_client.dump_last(clients[-1:])
        return 1
    except zeep.exceptions.Fault as e:
        print("zeep_create: unexpected fault %s: %s" % (e.code, e.message), file=sys.stderr)
        zeep_client.dump_last(clients[-1:])
        return 1
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
