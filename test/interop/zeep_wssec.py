#!/usr/bin/python3
"""WS-Security interoperability with python3-zeep and python3-xmlsec.

  zeep_wssec.py sign KEY.pem CERT.pem WSA_NS {sha1|sha256}
      builds a request with zeep (client.create_message: the WS-Addressing plugin and
      the WSSE signature applied, nothing sent) and prints the signed envelope.
      zeep's BinarySignature signs only the Body and the Timestamp; WsaBinarySignature
      below also signs every other header block (WS-Addressing, the resource key), as vws requires.
  zeep_wssec.py sign-envelope KEY.pem CERT.pem {sha1|sha256} < envelope.xml
      signs an envelope built elsewhere the same way, without zeep's client (to
      check canonicalization of unusual content against xmlsec's).
  zeep_wssec.py sign-envelope-inclusive KEY.pem CERT.pem {sha1|sha256} < envelope.xml
      the same, with each transform's InclusiveNamespaces listing every prefix its
      ancestors declare, "#default" for a default namespace, as WSS4J (Axis2, CXF)
      writes it (WSSecSignature.getInclusivePrefixes).
  zeep_wssec.py verify CERT.pem < envelope.xml
      checks an envelope signed elsewhere with zeep's own verifier (xmlsec), exit 0 if
      it verifies, 1 if not.
  zeep_wssec.py call {signed|unsigned} WSDL_URL KEY.pem CERT.pem CA.pem SERVER_CERT.pem OUT_DIR
      calls GetResourceProperty fac:Version on a live WorkspaceFactoryService over
      HTTPS with the client certificate (see call_factory).

WSA_NS is the WS-Addressing namespace to write the headers in: zeep's
WsAddressingPlugin knows only 2005/08, so 2004/03 headers come from a plugin of ours
that writes the same three headers (Action, MessageID, To) in the older namespace.
"""

import datetime
import os
import sys
import tempfile
import uuid

import xmlsec
from lxml import etree
from lxml.builder import ElementMaker

import zeep
from zeep import ns
from zeep.plugins import Plugin
from zeep.wsa import WsAddressingPlugin
from zeep.wsdl.utils import get_or_create_header
from zeep.wsse import signature as zsig
from zeep.wsse.utils import WSU, get_security_header, ensure_id

WSA200403 = "http://schemas.xmlsoap.org/ws/2004/03/addressing"
WSA200508 = "http://www.w3.org/2005/08/addressing"
VW = "http://vws.dev/ns/2026/workspace"
ADDRESS = "https://repo.example.org:8443/wsrf/services/WorkspaceService"

WSDL = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:vw="{vw}" targetNamespace="{vw}">
  <types>
    <xsd:schema targetNamespace="{vw}" elementFormDefault="qualified">
      <xsd:element name="Deploy">
        <xsd:complexType><xsd:sequence>
          <xsd:element name="State" type="xsd:string"/>
        </xsd:sequence></xsd:complexType>
      </xsd:element>
      <xsd:element name="DeployResponse"><xsd:complexType/></xsd:element>
    </xsd:schema>
  </types>
  <message name="DeployRequest"><part name="p" element="vw:Deploy"/></message>
  <message name="DeployResponse"><part name="p" element="vw:DeployResponse"/></message>
  <portType name="WorkspacePortType">
    <operation name="Deploy">
      <input message="vw:DeployRequest"/><output message="vw:DeployResponse"/>
    </operation>
  </portType>
  <binding name="WorkspaceBinding" type="vw:WorkspacePortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <operation name="Deploy">
      <soap:operation soapAction="{vw}/Deploy"/>
      <input><soap:body use="literal"/></input>
      <output><soap:body use="literal"/></output>
    </operation>
  </binding>
  <service name="WorkspaceService">
    <port name="WorkspacePort" binding="vw:WorkspaceBinding">
      <soap:address location="{address}"/>
    </port>
  </service>
</definitions>
""".format(vw=VW, address=ADDRESS)


class WsAddressing200403Plugin(Plugin):
    """zeep's WsAddressingPlugin, in the March 2004 namespace of GT 4.0."""

    def egress(self, envelope, http_headers, operation, binding_options):
        wsa = ElementMaker(namespace=WSA200403, nsmap={"wsa": WSA200403})
        header = get_or_create_header(envelope)
        header.extend([
            wsa.Action(operation.soapaction),
            wsa.MessageID("urn:uuid:" + str(uuid.uuid4())),
            wsa.To(binding_options["address"]),
        ])
        return envelope, http_headers


class WsaBinarySignature(zsig.BinarySignature):
    """BinarySignature that adds a Timestamp and signs it, the Body and every
    other header block (WS-Addressing, the resource key), with the certificate in a
    BinarySecurityToken.

    The steps are zeep's (_signature_prepare and _sign_envelope_with_key_binary),
    with _sign_node called for the addressing headers as well.
    """

    inclusive = False

    def _sign(self, ctx, signature, node):
        zsig._sign_node(ctx, signature, node, self.digest_method)
        if not self.inclusive:
            return
        prefixes = sorted(p if p is not None else "#default" for p in node.getparent().nsmap)
        transform = signature.findall(".//{%s}Reference" % ns.DS)[-1].find(".//{%s}Transform" % ns.DS)
        ec = "http://www.w3.org/2001/10/xml-exc-c14n#"
        etree.SubElement(transform, etree.QName(ec, "InclusiveNamespaces"), {"PrefixList": " ".join(prefixes)}, nsmap={"ec": ec})

    def apply(self, envelope, headers):
        key = zsig._make_sign_key(self.key_data, self.cert_data, self.password)
        security = get_security_header(envelope)
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        security.append(WSU.Timestamp(
            WSU.Created(now.isoformat().replace("+00:00", "Z")),
            WSU.Expires((now + datetime.timedelta(minutes=5)).isoformat().replace("+00:00", "Z")),
        ))

        soap_env = zsig.detect_soap_env(envelope)
        signature = xmlsec.template.create(
            envelope, xmlsec.Transform.EXCL_C14N,
            self.signature_method or xmlsec.Transform.RSA_SHA1)
        key_info = xmlsec.template.ensure_key_info(signature)
        x509_data = xmlsec.template.add_x509_data(key_info)
        xmlsec.template.x509_data_add_certificate(x509_data)
        security.insert(0, signature)

        ctx = xmlsec.SignatureContext()
        ctx.key = key
        self._sign(ctx, signature, envelope.find(etree.QName(soap_env, "Body")))
        self._sign(ctx, signature, security.find(etree.QName(ns.WSU, "Timestamp")))
        header = envelope.find(etree.QName(soap_env, "Header"))
        for h in header:
            # Every header block but the Security header: the WS-Addressing headers
            # and the resource key, which vws requires signed with the rest.
            if h is not security:
                self._sign(ctx, signature, h)
        ctx.sign(signature)

        # As zeep's BinarySignature: the certificate moves into a BinarySecurityToken
        # that KeyInfo references.
        str_el = etree.SubElement(key_info, etree.QName(ns.WSSE, "SecurityTokenReference"))
        ref = etree.SubElement(str_el, etree.QName(ns.WSSE, "Reference"), {
            "ValueType": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"})
        bst = etree.Element(etree.QName(ns.WSSE, "BinarySecurityToken"), {
            "ValueType": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3",
            "EncodingType": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"})
        ref.attrib["URI"] = "#" + ensure_id(bst)
        bst.text = x509_data.find(etree.QName(ns.DS, "X509Certificate")).text
        security.insert(1, bst)
        x509_data.getparent().remove(x509_data)
        return envelope, headers


def methods_for(alg):
    if alg == "sha256":
        return dict(signature_method=xmlsec.Transform.RSA_SHA256, digest_method=xmlsec.Transform.SHA256)
    return dict(signature_method=xmlsec.Transform.RSA_SHA1, digest_method=xmlsec.Transform.SHA1)


def sign(key, cert, wsa_ns, alg):
    methods = methods_for(alg)
    plugin = WsAddressingPlugin() if wsa_ns == WSA200508 else WsAddressing200403Plugin()
    with tempfile.TemporaryDirectory() as d:
        wsdl = os.path.join(d, "ws.wsdl")
        with open(wsdl, "w") as f:
            f.write(WSDL)
        client = zeep.Client(wsdl, wsse=WsaBinarySignature(key, cert, **methods), plugins=[plugin])
        envelope = client.create_message(client.service, "Deploy", State="running")
    sys.stdout.buffer.write(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def sign_envelope(key, cert, alg, inclusive=False):
    envelope = etree.fromstring(sys.stdin.buffer.read())
    signer = WsaBinarySignature(key, cert, **methods_for(alg))
    signer.inclusive = inclusive
    signer.apply(envelope, {})
    sys.stdout.buffer.write(etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def verify(cert):
    envelope = etree.fromstring(sys.stdin.buffer.read())
    try:
        zsig.verify_envelope(envelope, cert)
    except zeep.exceptions.SignatureVerificationFailed:
        print("signature verification failed", file=sys.stderr)
        sys.exit(1)
    print("verified")


# --- calls to a live vws server (test/interop_wssec_server_test.go) ---

FAC = "http://vws.dev/ns/2026/factory"


class ServerSignature(WsaBinarySignature):
    """WsaBinarySignature for calls to a live server. zeep hands every answer to
    wsse.verify, and zeep's own verify checks it against the *caller's* certificate;
    vws signs its answers with its host key, so this one checks them against the
    server's certificate. An unsigned fault (vws signs answers only to signed requests,
    so a refused request gets one) is passed through for zeep to raise as a Fault."""

    def __init__(self, key, cert, server_cert, **methods):
        super().__init__(key, cert, **methods)
        self.server_cert = server_cert

    def verify(self, envelope):
        soap_env = zsig.detect_soap_env(envelope)
        header = envelope.find(etree.QName(soap_env, "Header"))
        unsigned = header is None or header.find(etree.QName(ns.WSSE, "Security")) is None
        if unsigned and envelope.find("{%s}Body/{%s}Fault" % (soap_env, soap_env)) is not None:
            return envelope
        zsig.verify_envelope(envelope, self.server_cert)
        return envelope


def call_factory(mode, wsdl, key, cert, ca, server_cert, out_dir):
    """GetResourceProperty fac:Version on the WorkspaceFactoryService whose WSDL is at
    wsdl, over HTTPS with the client certificate (cert, key) and the CA in ca, signed
    (mode "signed") or not ("unsigned"). Prints a JSON object: the version, or the fault.
    The raw bytes of the SOAP request as sent and of the answer as received go to
    out_dir/request.xml and out_dir/response.xml."""
    import json
    import requests
    from zeep.transports import Transport

    session = requests.Session()
    session.cert = (cert, key)
    session.verify = ca
    # Else requests takes REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE over session.verify, and
    # the proxy settings, from the environment.
    session.trust_env = False
    posts = []
    session.hooks["response"].append(lambda r, *a, **kw: posts.append(r) if r.request.method == "POST" else None)
    wsse = ServerSignature(key, cert, server_cert, **methods_for("sha256")) if mode == "signed" else None
    client = zeep.Client(wsdl, transport=Transport(session=session), wsse=wsse)
    client.set_ns_prefix("fac", FAC)
    try:
        result = client.service.GetResourceProperty("fac:Version")
        items = result if isinstance(result, list) else [result]
        out = {"ok": True, "values": [
            (v.text or "").strip() if isinstance(v, etree._Element) else str(v).strip() for v in items]}
    except zeep.exceptions.Fault as f:
        out = {"ok": False, "faultcode": str(f.code), "fault": f.message}
    except zeep.exceptions.SignatureVerificationFailed:
        out = {"ok": False, "fault": "zeep: the answer's signature does not verify with " + server_cert}
    if len(posts) != 1:
        sys.exit("want one SOAP POST, saw %d" % len(posts))
    with open(os.path.join(out_dir, "request.xml"), "wb") as f:
        f.write(posts[0].request.body)
    with open(os.path.join(out_dir, "response.xml"), "wb") as f:
        f.write(posts[0].content)
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "sign":
        sign(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "sign-envelope":
        sign_envelope(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "sign-envelope-inclusive":
        sign_envelope(*sys.argv[2:], inclusive=True)
    elif len(sys.argv) == 3 and sys.argv[1] == "verify":
        verify(sys.argv[2])
    elif len(sys.argv) == 9 and sys.argv[1] == "call" and sys.argv[2] in ("signed", "unsigned"):
        call_factory(*sys.argv[2:])
    else:
        sys.exit(__doc__)
