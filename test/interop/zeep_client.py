#!/usr/bin/python3
"""Interoperability client for vws built with python3-zeep.

zeep loads the WorkspaceService WSDL from the live ?wsdl URL (fetching every imported
schema over HTTP), and the operations are called through the zeep service proxy:

  * WSRF 1.2: zeep's own WS-Addressing support adds wsa:Action (from wsaw:Action),
    wsa:MessageID and wsa:To in the W3C namespace; the workspace key is sent as a
    reference parameter header with wsa:IsReferenceParameter="true".
  * GT 4.0: zeep knows nothing of WS-Addressing 2004/03, so the client builds the
    headers (To, Action from the portType's wsa:Action, MessageID, From anonymous)
    and the reference-property header as elements and passes them as _soapheaders.

The scenario, on workspace --key unless said otherwise:

  GetResourceProperty vw:state, GetResourceProperty vw:name,
  GetMultipleResourceProperties (vw:name, vw:state, vw:owner, wsrl:TerminationTime),
  QueryResourceProperties (XPath), SetTerminationTime(--termination),
  GetResourceProperty wsrl:TerminationTime, GetResourceProperty of an undeclared
  property (a fault), Destroy of --destroy-key, GetResourceProperty on --destroy-key
  after the Destroy (a fault).

Results go to stdout as one JSON object; anything unexpected exits non-zero with the
reason (and the last exchange) on stderr. A fault is reported with the BaseFault subtype
of its detail, its ErrorCode and Description, after zeep has parsed the detail with the
element the WSDL's schema declares for it.
"""

import argparse
import datetime
import json
import sys
import uuid

from lxml import etree
import zeep
import zeep.exceptions
from zeep.plugins import HistoryPlugin, Plugin

VW = "http://vws.dev/ns/2026/workspace"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XPATH_DIALECT = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

DIALECTS = {
    "gt4": {
        "wsa": "http://schemas.xmlsoap.org/ws/2004/03/addressing",
        "anonymous": "http://schemas.xmlsoap.org/ws/2004/03/addressing/role/anonymous",
        "wsdl_action_ns": "http://schemas.xmlsoap.org/ws/2004/03/addressing",
        "rp": "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd",
        "rl": "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime-1.2-draft-01.xsd",
        "bf": "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-BaseFaults-1.2-draft-01.xsd",
    },
    "wsrf12": {
        "wsa": "http://www.w3.org/2005/08/addressing",
        "anonymous": "http://www.w3.org/2005/08/addressing/anonymous",
        "wsdl_action_ns": "http://www.w3.org/2006/05/addressing/wsdl",
        "rp": "http://docs.oasis-open.org/wsrf/rp-2",
        "rl": "http://docs.oasis-open.org/wsrf/rl-2",
        "bf": "http://docs.oasis-open.org/wsrf/bf-2",
    },
}


class Failure(Exception):
    pass


def text(value):
    """The text of a property value as zeep returns it (an lxml element for xs:any
    content it has no type for, else a Python value or a zeep object)."""
    if isinstance(value, etree._Element):
        return (value.text or "").strip()
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if hasattr(value, "_value_1"):
        return text(value._value_1)
    if value is None:
        return ""
    return str(value).strip()


class MixedText(Plugin):
    """Sets the text content of the outgoing QueryExpression (a mixed-content element;
    zeep serializes only its attributes and child elements)."""

    def __init__(self, rp):
        self.rp = rp
        self.text = None

    def egress(self, envelope, http_headers, operation, binding_options):
        if self.text is not None:
            for el in envelope.iter("{%s}QueryExpression" % self.rp):
                el.text = self.text
        return envelope, http_headers


class Client:
    # Operations whose input and output actions the WSDL must name.
    REQUIRED_OPS = ("GetResourceProperty", "GetMultipleResourceProperties", "QueryResourceProperties",
                    "SetTerminationTime", "Destroy")
    def __init__(self, wsdl_url, dialect):
        self.d = DIALECTS[dialect]
        self.dialect = dialect
        self.history = HistoryPlugin()
        self.mixed = MixedText(self.d["rp"])
        # strict (zeep's default, spelled out): responses must match the WSDL's schema.
        settings = zeep.Settings(strict=True)
        self.client = zeep.Client(wsdl_url, plugins=[self.mixed, self.history], settings=settings)
        # QName-valued content (GetResourceProperty, ResourceProperty, the XPath)
        # resolves its prefixes against the declarations in scope: zeep declares
        # registered prefixes on the soap:Envelope.
        self.client.set_ns_prefix("vw", VW)
        self.client.set_ns_prefix("wsrl", self.d["rl"])
        self.service = self.client.service
        self.address = self.service._binding_options["address"]
        self.actions = self._actions(wsdl_url)
        self.current = None  # the operation of the last call

    def _actions(self, wsdl_url):
        """The WS-Addressing actions the portType names for each operation's input,
        output and faults. zeep itself reads only the input's W3C wsaw:/wsam:Action;
        GT4's WSDL uses the 2004/03 wsa:Action attribute."""
        attr = "{%s}Action" % self.d["wsdl_action_ns"]
        doc = etree.fromstring(self.client.transport.load(wsdl_url))
        actions = {}
        for op in doc.iterfind("{%s}portType/{%s}operation" % (WSDL_NS, WSDL_NS)):
            a = {"faults": {}}
            for m in op:
                local = etree.QName(m).localname
                if local in ("input", "output"):
                    a[local] = m.get(attr)
                elif local == "fault":
                    a["faults"][m.get("name")] = m.get(attr)
            actions[op.get("name")] = a
        for op in self.REQUIRED_OPS:
            if not actions.get(op, {}).get("input") or not actions[op].get("output"):
                raise Failure("the WSDL's portType names no %s on %s's input and output" % (attr, op))
        return actions

    def headers(self, operation, key):
        """SOAP headers for one call: the key, plus for GT4 the 2004/03 addressing headers
        (for WSRF 1.2 zeep adds W3C To, Action and MessageID itself, because the WSDL
        names wsaw:Action)."""
        wsa = self.d["wsa"]
        hs = []
        if self.dialect == "gt4":
            def mk(local, value):
                e = etree.Element("{%s}%s" % (wsa, local), nsmap={"wsa": wsa})
                e.text = value
                return e
            hs.append(mk("To", self.address))
            hs.append(mk("Action", self.actions[operation]["input"]))
            hs.append(mk("MessageID", "uuid:" + str(uuid.uuid4())))
            frm = etree.Element("{%s}From" % wsa, nsmap={"wsa": wsa})
            etree.SubElement(frm, "{%s}Address" % wsa).text = self.d["anonymous"]
            hs.append(frm)
            # a reference property is copied into the header as it is
            k = etree.Element("{%s}WorkspaceKey" % VW, nsmap={"ns1": VW})
        else:
            # a reference parameter, marked as WS-Addressing 1.0 Core section 3.3 requires
            k = etree.Element("{%s}WorkspaceKey" % VW, nsmap={"vw": VW, "wsa": wsa})
            k.set("{%s}IsReferenceParameter" % wsa, "true")
        k.text = key
        hs.append(k)
        return hs

    def call(self, operation, key, *args, **kwargs):
        self.current = operation
        result = getattr(self.service, operation)(*args, _soapheaders=self.headers(operation, key), **kwargs)
        self.check_reply(self.actions[operation]["output"])
        return result

    def check_reply(self, want_action):
        """The response's addressing headers: wsa:RelatesTo is the MessageID that was
        sent and wsa:Action the one the WSDL names for this output or fault."""
        wsa = self.d["wsa"]
        header = "{http://schemas.xmlsoap.org/soap/envelope/}Header/{%s}%s"
        sent = self.history.last_sent["envelope"].findtext(header % (wsa, "MessageID"))
        env = self.history.last_received["envelope"]
        got = env.findtext(header % (wsa, "RelatesTo"))
        action = env.findtext(header % (wsa, "Action"))
        if not sent or got != sent:
            raise Failure("%s: response wsa:RelatesTo %r is not the request's wsa:MessageID %r" % (
                self.current, got, sent))
        if action != want_action:
            raise Failure("%s: response wsa:Action (%s) is %r; the WSDL names %r" % (
                self.current, wsa, action, want_action))
        return action

    def fault(self, operation, key, *args, **kwargs):
        """Call an operation that must fault; return the parsed BaseFault detail."""
        try:
            self.call(operation, key, *args, **kwargs)
        except zeep.exceptions.Fault as f:
            return self.parse_fault(f)
        raise Failure("%s succeeded but a fault was expected" % operation)

    def parse_fault(self, f):
        """The BaseFault in a fault's detail: its subtype, ErrorCode and Description.

        zeep raises a generic Fault with the raw <detail>. The entry is first parsed
        with the element the WSDL's schema declares for it, which proves the detail is
        the typed fault the WSDL promises (an element the type does not declare, or a
        missing Timestamp, raises here). The fields are then read from the entry itself:
        zeep drops the text of mixed content (ErrorCode extends xs:anyType, mixed), and in
        bf-2 the leading <xs:any namespace="##other"/> of BaseFaultType swallows the
        BaseFault elements because zeep ignores the namespace constraint
        (python-zeep#900)."""
        if f.detail is None or len(f.detail) != 1:
            raise Failure("fault %r has no single detail entry" % f.message)
        entry = f.detail[0]
        q = etree.QName(entry)
        try:
            element = self.client.get_element("{%s}%s" % (q.namespace, q.localname))
            element.parse(entry, self.client.wsdl.types)
        except (zeep.exceptions.LookupError, zeep.exceptions.XMLParseError, ValueError) as e:
            raise Failure("fault detail %s does not parse with the WSDL's schema: %s\n%s" % (
                q, e, etree.tostring(entry).decode()))
        bf = self.d["bf"]
        children = [e for e in entry if isinstance(e.tag, str)]
        if not children or children[0].tag != "{%s}Timestamp" % bf:
            raise Failure("fault detail %s does not start with %s Timestamp" % (q, bf))
        error_code = entry.find("{%s}ErrorCode" % bf)
        originator = entry.find("{%s}Originator" % bf)
        return {
            "type": q.localname,
            "namespace": q.namespace,
            "faultcode": f.code,
            "faultstring": f.message,
            "errorCode": text(error_code),
            "errorCodeDialect": None if error_code is None else error_code.get("dialect"),
            "description": " ".join(text(d) for d in entry.findall("{%s}Description" % bf)),
            "timestamp": text(children[0]),
            "originatorAddress": "" if originator is None else
            (originator.findtext("{%s}Address" % self.d["wsa"]) or "").strip(),
            "action": self.check_reply(self.actions[self.current]["faults"].get(q.localname)),
        }


def values(c, result):
    """The property values of a Get*/Query response as {"{ns}local": [text, ...]}.

    The values are what zeep parsed: it parses each xs:any child with the global element
    the schema declares for it (so a property that does not match its declaration fails
    here), and hands back elements it has no declaration for as lxml elements. A parsed
    simple value no longer carries its element name, so the names come from the
    received payload's children, which zeep's values follow one for one."""
    env = c.history.last_received["envelope"]
    body = env.find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
    payload = body[0]
    raw = [e for e in payload if isinstance(e.tag, str)]
    items = result if isinstance(result, list) else ([] if result is None else [result])
    # zeep drops an xs:any item that parses to None, i.e. an xsi:nil value of a simple
    # type; a nil element of a type with attributes stays as an empty object.
    nil = [e.get(XSI_NIL) in ("true", "1") for e in raw]
    dropped = len(items) != len(raw)
    if dropped and len(items) != len(raw) - sum(nil):
        raise Failure("zeep returned %d values for %d property elements" % (len(items), len(raw)))
    items = iter(items)
    out = {}
    for el, is_nil in zip(raw, nil):
        q = etree.QName(el)
        item = None if (is_nil and dropped) else next(items)
        if isinstance(item, etree._Element) and etree.QName(item) != q:
            raise Failure("value %s paired with element %s" % (etree.QName(item), q))
        out.setdefault("{%s}%s" % (q.namespace, q.localname), []).append("xsi:nil" if is_nil else text(item))
    return out


def dump_last(client):
    """The last request and response, for diagnosis."""
    if not client:
        return
    h = client[0].history
    for what, item in (("request", h.last_sent), ("response", h.last_received)):
        if item:
            print("%s %s:\n%s" % (client[0].current, what, etree.tostring(
                item["envelope"], pretty_print=True).decode()), file=sys.stderr)


def run(args, client):
    c = Client(args.wsdl, args.dialect)
    client.append(c)
    rl = c.d["rl"]
    out = {"dialect": args.dialect, "address": c.address}

    state = c.call("GetResourceProperty", args.key, "vw:state")
    out["state"] = values(c, state).get("{%s}state" % VW, [])

    name = c.call("GetResourceProperty", args.key, "vw:name")
    out["name"] = values(c, name).get("{%s}name" % VW, [])

    multi = c.call("GetMultipleResourceProperties", args.key,
                   ResourceProperty=["vw:name", "vw:state", "vw:owner", "wsrl:TerminationTime"])
    out["multiple"] = values(c, multi)

    # QueryExpressionType is mixed content: the XPath is the element's text, which zeep
    # cannot express (it ignores mixed="true"); the MixedText plugin fills it in. The
    # vw prefix the expression uses is declared on the envelope.
    c.mixed.text = args.query
    try:
        query = c.call("QueryResourceProperties", args.key, QueryExpression={"Dialect": XPATH_DIALECT})
    finally:
        c.mixed.text = None
    out["query"] = values(c, query)

    requested = datetime.datetime.fromisoformat(args.termination.replace("Z", "+00:00"))
    stt = c.call("SetTerminationTime", args.key, RequestedTerminationTime=requested)
    out["setTerminationTime"] = {
        "new": text(stt.NewTerminationTime),
        "current": text(stt.CurrentTime),
    }
    tt = c.call("GetResourceProperty", args.key, "wsrl:TerminationTime")
    out["terminationTime"] = values(c, tt).get("{%s}TerminationTime" % rl, [])

    out["invalidQNameFault"] = c.fault("GetResourceProperty", args.key, "vw:color")

    c.call("Destroy", args.destroy_key)
    out["destroyed"] = args.destroy_key
    out["afterDestroyFault"] = c.fault("GetResourceProperty", args.destroy_key, "vw:state")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsdl", required=True, help="the live WSDL URL, e.g. http://host/wsrf/services/WorkspaceService?wsdl")
    p.add_argument("--dialect", required=True, choices=sorted(DIALECTS))
    p.add_argument("--key", required=True, help="workspace to read and set the termination time of")
    p.add_argument("--destroy-key", required=True, help="workspace to destroy")
    p.add_argument("--termination", required=True, help="requested termination time, xsd:dateTime in UTC")
    p.add_argument("--query", default="/*/vw:name", help="XPath 1.0 query for QueryResourceProperties")
    args = p.parse_args()
    client = []
    try:
        out = run(args, client)
    except Failure as e:
        print("zeep_client: %s" % e, file=sys.stderr)
        dump_last(client)
        return 1
    except zeep.exceptions.Fault as f:
        print("zeep_client: unexpected fault %s: %s" % (f.code, f.message), file=sys.stderr)
        dump_last(client)
        return 1
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
