#!/usr/bin/python3
"""WS-BaseNotification interoperability client for vws built with python3-zeep.

zeep loads two WSDLs from their live ?wsdl URLs (WSRF 1.2 / WSN 1.3, or GT 4.0 / WSN 1.2
draft 01 with &dialect=gt4), fetching every imported schema over HTTP: WorkspaceService's,
for Subscribe, and SubscriptionManagerService's, whose service proxy is bound to the
address of the SubscriptionReference that Subscribe answers. The addressing headers are
zeep_client.Client's; the subscription's reference property (GT4) or parameter
(WSRF 1.2) is copied from that EPR into each request's SOAP header as it is, marked
wsa:IsReferenceParameter="true" in WSRF 1.2.

The script runs its own notification consumer: an http.server on 127.0.0.1 (an
ephemeral port) in a thread, which answers every POST with HTTP 202 and keeps the body;
lxml parses each Notify. The ConsumerReference carries a reference property/parameter
of the consumer's own ({urn:vws-interop:consumer}ConsumerId), which every Notify must
bring back as a SOAP header.

Scenario (a line of JSON on stdout after each step; the caller checks it, changes the
workspace's state where the step says so, and answers "ok" on stdin before the next
step; anything else stops the script):

  subscribed        Subscribe to --key's vw:state (Simple topic dialect), then
                    GetResourceProperty vwn:Paused on the subscription. The caller
                    changes the state (shutdown -> running).
  notified          the Notify the consumer received for that change
  paused            PauseSubscription, GetResourceProperty vwn:Paused. The caller
                    changes the state (-> paused): nothing may be sent.
  resumed           ResumeSubscription, GetResourceProperty vwn:Paused. The caller
                    changes the state (-> shutdown).
  notifiedAgain     the Notify for that change (its old value shows whether the change
                    made while paused was sent)
  renewed           WSRF 1.2: Renew (TerminationTime PT2H); GT4: SetTerminationTime
                    (--termination). Then GetResourceProperty wsrl:TerminationTime.
  ended             WSRF 1.2: Unsubscribe; GT4: Destroy. Then GetResourceProperty
                    vwn:Paused, which must fault (ResourceUnknownFault). The caller
                    changes the state again.
  quiet             --quiet seconds later: how many messages the consumer received
                    since (none may come for an ended subscription)

A fault is reported as zeep_client.Client.parse_fault reads it (its detail parsed with
the element the WSDL declares). Anything unexpected exits non-zero with the reason (and
the last exchange) on stderr.
"""

import argparse
import copy
import datetime
import http.server
import json
import os
import queue
import sys
import threading
import time

from lxml import etree
import zeep.exceptions
from zeep.plugins import Plugin

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zeep_client  # noqa: E402  (the dialects, headers, reply and fault checks)
from zeep_client import DIALECTS, VW, Failure, values, text  # noqa: E402

VWN = "http://vws.dev/ns/2026/notification"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
CONSUMER_NS = "urn:vws-interop:consumer"
CONSUMER_ID = "zeep-consumer-7"

BN = {
    "gt4": {
        "bn": "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification-1.2-draft-01.xsd",
        "simple": "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple",
        "notify_action": "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Notify",
        "references": "ReferenceProperties",
        "old": "OldValue", "new": "NewValue",
    },
    "wsrf12": {
        "bn": "http://docs.oasis-open.org/wsn/b-2",
        "simple": "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple",
        "notify_action": "http://docs.oasis-open.org/wsn/bw-2/NotificationConsumer/Notify",
        "references": "ReferenceParameters",
        "old": "OldValues", "new": "NewValues",
    },
}


# ----------------------------------------------------------------- the consumer

class Consumer:
    """A notification consumer: an HTTP server on 127.0.0.1 that keeps every POST."""

    def __init__(self):
        received = self.received = queue.Queue()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                received.put({"path": self.path, "soapAction": self.headers.get("SOAPAction"),
                              "contentType": self.headers.get("Content-Type"), "body": body})
                # Notify is one-way: accepted, no SOAP envelope in the answer
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/consumer" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next(self, timeout):
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise Failure("the consumer received no Notify within %g s" % timeout)

    def pending(self):
        return self.received.qsize()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def qname_text(el):
    """The QName an element's text names, resolved against its namespace context, as
    {ns}local."""
    value = (el.text or "").strip()
    prefix, _, local = value.rpartition(":")
    ns = el.nsmap.get(prefix or None)
    if ns is None:
        raise Failure("%s %r: prefix %r is not declared" % (el.tag, value, prefix))
    return "{%s}%s" % (ns, local)


def parse_notify(dialect, delivery):
    """What a Notify carried, read with lxml: its addressing headers, the consumer's
    reference header, the topic, the producer's and subscription's keys, and the old and
    new property values."""
    d, b = DIALECTS[dialect], BN[dialect]
    wsa, bn = d["wsa"], b["bn"]
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    env = etree.fromstring(delivery["body"], parser)
    if env.tag != "{%s}Envelope" % SOAP_ENV:
        raise Failure("the consumer received %s, not a SOAP 1.1 envelope" % env.tag)
    header = env.find("{%s}Header" % SOAP_ENV)
    body = env.find("{%s}Body" % SOAP_ENV)
    hdr = (lambda local: None) if header is None else (lambda local: header.findtext("{%s}%s" % (wsa, local)))
    out = {
        "soapAction": delivery["soapAction"],
        "contentType": delivery["contentType"],
        "path": delivery["path"],
        "action": hdr("Action"),
        "to": hdr("To"),
        "messageID": hdr("MessageID"),
    }
    cid = None if header is None else header.find("{%s}ConsumerId" % CONSUMER_NS)
    out["consumerId"] = None if cid is None else (cid.text or "").strip()
    out["consumerIdIsReferenceParameter"] = None if cid is None else cid.get("{%s}IsReferenceParameter" % wsa)
    payload = [e for e in body if isinstance(e.tag, str)]
    if len(payload) != 1 or payload[0].tag != "{%s}Notify" % bn:
        raise Failure("Notify body holds %s, want one {%s}Notify" % ([e.tag for e in payload], bn))
    messages = payload[0].findall("{%s}NotificationMessage" % bn)
    out["messages"] = len(messages)
    if not messages:
        raise Failure("Notify has no NotificationMessage")
    nm = messages[0]
    topic = nm.find("{%s}Topic" % bn)
    if topic is None:
        raise Failure("NotificationMessage has no Topic")
    out["topic"] = qname_text(topic)
    out["topicDialect"] = topic.get("Dialect")
    ref = "{%s}%s/{%%s}%%s" % (wsa, b["references"])  # then % (namespace, local)
    producer = nm.find("{%s}ProducerReference" % bn)
    out["producerAddress"] = None if producer is None else producer.findtext("{%s}Address" % wsa)
    out["producerKey"] = None if producer is None else producer.findtext(ref % (VW, "WorkspaceKey"))
    sub = nm.find("{%s}SubscriptionReference" % bn)
    out["subscriptionKey"] = None if sub is None else sub.findtext(ref % (VWN, "SubscriptionKey"))
    message = nm.find("{%s}Message" % bn)
    change = None if message is None else message.find("{%s}ResourcePropertyValueChangeNotification" % d["rp"])
    if change is None:
        raise Failure("Message holds no %s ResourcePropertyValueChangeNotification:\n%s" % (
            d["rp"], etree.tostring(nm).decode()))

    def vals(local):
        holder = change.find("{%s}%s" % (d["rp"], local))
        if holder is None:
            return None
        return {"{%s}%s" % (etree.QName(e).namespace, etree.QName(e).localname): (e.text or "").strip()
                for e in holder if isinstance(e.tag, str)}
    out["old"], out["new"] = vals(b["old"]), vals(b["new"])
    return out


# ----------------------------------------------------------------- the SOAP clients

class TopicText(Plugin):
    """Sets the text of the outgoing GT4 TopicExpression, a mixed-content element whose
    text zeep does not serialize (cf. zeep_client.MixedText)."""

    def __init__(self, bn):
        self.bn = bn
        self.text = None

    def egress(self, envelope, http_headers, operation, binding_options):
        if self.text is not None:
            for el in envelope.iter("{%s}TopicExpression" % self.bn):
                el.text = self.text
        return envelope, http_headers


class ProducerClient(zeep_client.Client):
    """zeep_client.Client for WorkspaceService, with Subscribe."""

    REQUIRED_OPS = zeep_client.Client.REQUIRED_OPS + ("Subscribe",)

    def __init__(self, wsdl_url, dialect):
        super().__init__(wsdl_url, dialect)
        self.topic_text = TopicText(BN[dialect]["bn"])
        self.client.plugins.insert(0, self.topic_text)


class SubscriptionClient(zeep_client.Client):
    """zeep_client.Client for SubscriptionManagerService, bound to a subscription's EPR:
    its address, and its references sent as SOAP headers."""

    REQUIRED_OPS = zeep_client.Client.REQUIRED_OPS + ("PauseSubscription", "ResumeSubscription")

    def __init__(self, wsdl_url, dialect, address, references):
        if dialect == "wsrf12":
            self.REQUIRED_OPS += ("Renew", "Unsubscribe")
        super().__init__(wsdl_url, dialect)
        self.client.set_ns_prefix("vwn", VWN)
        binding = list(self.client.wsdl.bindings)[0]
        self.service = self.client.create_service(binding, address)
        self.address = address
        self.references = references

    def headers(self, operation, key):
        wsa = self.d["wsa"]
        hs = [h for h in super().headers(operation, "") if h.tag != "{%s}WorkspaceKey" % VW]
        for r in self.references:
            h = copy.deepcopy(r)
            if self.dialect == "wsrf12":
                # WS-Addressing 1.0 Core section 3.3: each reference parameter becomes a
                # header block marked as one
                h.set("{%s}IsReferenceParameter" % wsa, "true")
            hs.append(h)
        return hs


def epr_parts(dialect, epr):
    """The address and the reference properties/parameters of an EPR zeep parsed."""
    address = text(epr.Address)
    holder = getattr(epr, BN[dialect]["references"])
    refs = [] if holder is None else [e for e in (holder._value_1 or []) if isinstance(e, etree._Element)]
    if not address or not refs:
        raise Failure("SubscriptionReference has address %r and references %r" % (address, refs))
    return address, refs


def consumer_reference(dialect, url):
    """The consumer's EPR: its address and a reference of its own."""
    cid = etree.Element("{%s}ConsumerId" % CONSUMER_NS, nsmap={"c": CONSUMER_NS})
    cid.text = CONSUMER_ID
    return {"Address": url, BN[dialect]["references"]: {"_value_1": [cid]}}


def paused(s):
    """GetResourceProperty vwn:Paused, as the xsd:boolean zeep parsed it."""
    r = s.call("GetResourceProperty", None, "vwn:Paused")
    got = values(s, r).get("{%s}Paused" % VWN, [])
    items = r if isinstance(r, list) else [r]
    if len(items) != 1 or not isinstance(items[0], bool):
        raise Failure("vwn:Paused parsed as %r (%s), not one xsd:boolean" % (items, got))
    return "true" if items[0] else "false"


class Run:
    def __init__(self, args):
        self.args = args
        self.dialect = args.dialect

    def report(self, step, **fields):
        """Print the step's report and wait for the caller's go-ahead."""
        fields["step"] = step
        print(json.dumps(fields, sort_keys=True), flush=True)
        answer = sys.stdin.readline().strip()
        if answer != "ok":
            raise Failure("the caller stopped the scenario after %s: %r" % (step, answer))

    def run(self, clients):
        a, dialect = self.args, self.dialect
        b = BN[dialect]
        consumer = self.consumer = Consumer()
        p = ProducerClient(a.wsdl, dialect)
        clients.append(p)

        kwargs = {"ConsumerReference": consumer_reference(dialect, consumer.url)}
        if dialect == "gt4":
            # a TopicExpressionType instance; its text (vw:state, the vw prefix declared
            # on the envelope) is put in by the TopicText plugin
            kwargs["TopicExpression"] = {"Dialect": b["simple"]}
            p.topic_text.text = "vw:state"
        else:
            # FilterType is a sequence of any: the TopicExpression goes in as an element,
            # the prefix its text uses declared on it
            te = etree.Element("{%s}TopicExpression" % b["bn"], nsmap={"wsnt": b["bn"], "vw": VW})
            te.set("Dialect", b["simple"])
            te.text = "vw:state"
            kwargs["Filter"] = {"_value_1": [te]}
        try:
            resp = p.call("Subscribe", a.key, **kwargs)
        finally:
            p.topic_text.text = None
        # GT4's SubscribeResponse has one child: zeep hands back its value itself
        address, refs = epr_parts(dialect, resp.SubscriptionReference if dialect == "wsrf12" else resp)
        sub_key = None
        for r in refs:
            if r.tag == "{%s}SubscriptionKey" % VWN:
                sub_key = (r.text or "").strip()
        out = {"consumer": consumer.url, "address": address, "key": sub_key,
               "references": ["{%s}%s" % (etree.QName(r).namespace, etree.QName(r).localname) for r in refs]}
        if dialect == "wsrf12":
            out["currentTime"] = text(resp.CurrentTime)
            out["terminationTime"] = text(resp.TerminationTime)

        s = SubscriptionClient(a.sub_wsdl, dialect, address, refs)
        clients.append(s)
        out["paused"] = paused(s)
        self.report("subscribed", **out)

        n = parse_notify(dialect, consumer.next(a.timeout))
        self.report("notified", notify=n, pending=consumer.pending())

        s.call("PauseSubscription", None)
        self.report("paused", paused=paused(s))

        s.call("ResumeSubscription", None)
        self.report("resumed", paused=paused(s), pending=consumer.pending())

        n = parse_notify(dialect, consumer.next(a.timeout))
        self.report("notifiedAgain", notify=n, pending=consumer.pending())

        if dialect == "wsrf12":
            r = s.call("Renew", None, TerminationTime="PT2H")
            renewed = {"terminationTime": text(r.TerminationTime), "currentTime": text(r.CurrentTime)}
        else:
            requested = datetime.datetime.fromisoformat(a.termination.replace("Z", "+00:00"))
            r = s.call("SetTerminationTime", None, RequestedTerminationTime=requested)
            renewed = {"terminationTime": text(r.NewTerminationTime), "currentTime": text(r.CurrentTime)}
        tt = s.call("GetResourceProperty", None, "wsrl:TerminationTime")
        renewed["property"] = values(s, tt).get("{%s}TerminationTime" % DIALECTS[dialect]["rl"], [])
        self.report("renewed", **renewed)

        s.call("Unsubscribe" if dialect == "wsrf12" else "Destroy", None)
        self.report("ended", fault=s.fault("GetResourceProperty", None, "vwn:Paused"), pending=consumer.pending())

        time.sleep(a.quiet)
        self.report("quiet", pending=consumer.pending())


def dump_last(clients):
    for c in reversed(clients):
        if c.history.last_sent:
            zeep_client.dump_last([c])
            return


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsdl", required=True, help="WorkspaceService's live WSDL URL")
    p.add_argument("--sub-wsdl", required=True, help="SubscriptionManagerService's live WSDL URL")
    p.add_argument("--dialect", required=True, choices=sorted(DIALECTS))
    p.add_argument("--key", required=True, help="the workspace to subscribe to")
    p.add_argument("--termination", required=True, help="GT4: the SetTerminationTime to ask for, xsd:dateTime in UTC")
    p.add_argument("--timeout", type=float, default=15, help="seconds to wait for each Notify")
    p.add_argument("--quiet", type=float, default=1, help="seconds to listen after the subscription ended")
    args = p.parse_args()
    clients = []
    r = Run(args)
    try:
        r.run(clients)
    except Failure as e:
        print("zeep_notify: %s" % e, file=sys.stderr)
        dump_last(clients)
        return 1
    except zeep.exceptions.Fault as f:
        print("zeep_notify: unexpected fault %s: %s" % (f.code, f.message), file=sys.stderr)
        dump_last(clients)
        return 1
    finally:
        if getattr(r, "consumer", None):
            r.consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
