package vwsinterop;

import java.io.InputStream;
import java.net.URL;
import java.rmi.RemoteException;
import java.text.SimpleDateFormat;
import java.util.ArrayList;
import java.util.Calendar;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TimeZone;
import java.util.UUID;

import javax.xml.namespace.QName;
import javax.xml.parsers.DocumentBuilderFactory;

import org.apache.axis.AxisFault;
import org.apache.axis.Message;
import org.apache.axis.client.Call;
import org.apache.axis.client.Stub;
import org.apache.axis.description.FaultDesc;
import org.apache.axis.message.MessageElement;
import org.apache.axis.message.SOAPEnvelope;
import org.apache.axis.message.SOAPHeaderElement;
import org.apache.axis.message.Text;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

/**
 * Interoperability client for vws built on Apache Axis 1.4: the stubs are what
 * WSDL2Java -W generated from the live ?wsdl URL, and the addressing and resource-key
 * headers are set with Stub.setHeader, the way GT 4.0 clients did (Axis marks each such
 * header actor="http://schemas.xmlsoap.org/soap/actor/next" mustUnderstand="0").
 *
 * <pre>
 * java vwsinterop.Client --wsdl URL --dialect gt4|wsrf12 --key K --destroy-key D
 *      --termination 2030-01-02T03:04:05Z [--query XPATH]
 * </pre>
 *
 * Runs GetResourceProperty (vw:state, vw:name), GetMultipleResourceProperties,
 * QueryResourceProperties, SetTerminationTime, GetResourceProperty
 * (wsrl:TerminationTime), GetResourceProperty of an undeclared property (a fault),
 * Destroy of D and GetResourceProperty on D (a fault), and prints one JSON report.
 */
public final class Client {
    static final String VW = "http://vws.dev/ns/2026/workspace";
    static final String WSDL = "http://schemas.xmlsoap.org/wsdl/";
    static final String WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/";
    static final String XSI = "http://www.w3.org/2001/XMLSchema-instance";
    static final String XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116";

    /** Namespaces of one dialect. */
    static final class Dialect {
        final String name, wsa, anonymous, actionAttr, rp, rl;

        Dialect(String name, String wsa, String anonymous, String actionAttr, String rp, String rl) {
            this.name = name;
            this.wsa = wsa;
            this.anonymous = anonymous;
            this.actionAttr = actionAttr;
            this.rp = rp;
            this.rl = rl;
        }
    }

    static final Dialect GT4 = new Dialect("gt4",
        "http://schemas.xmlsoap.org/ws/2004/03/addressing",
        "http://schemas.xmlsoap.org/ws/2004/03/addressing/role/anonymous",
        "http://schemas.xmlsoap.org/ws/2004/03/addressing",
        "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd",
        "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime-1.2-draft-01.xsd");
    static final Dialect WSRF12 = new Dialect("wsrf12",
        "http://www.w3.org/2005/08/addressing",
        "http://www.w3.org/2005/08/addressing/anonymous",
        "http://www.w3.org/2006/05/addressing/wsdl",
        "http://docs.oasis-open.org/wsrf/rp-2",
        "http://docs.oasis-open.org/wsrf/rl-2");

    /** The input, output and fault actions the WSDL's portType names for an operation. */
    static final class Actions {
        String input, output;
        final Map<String, String> faults = new HashMap<String, String>();
    }

    static final class Failure extends Exception {
        Failure(String msg) {
            super(msg);
        }
    }

    private final Dialect d;
    private final Ops ops;
    private final String address;
    private final Map<String, Actions> actions;
    private String current; // the operation of the last call

    private Client(Dialect d, Ops ops, String address, Map<String, Actions> actions) {
        this.d = d;
        this.ops = ops;
        this.address = address;
        this.actions = actions;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<String, String>();
        args.put("--query", "/*/vw:name");
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i], argv[i + 1]);
        }
        for (String required : new String[] {"--wsdl", "--dialect", "--key", "--destroy-key", "--termination"}) {
            if (!args.containsKey(required)) {
                System.err.println("usage: Client --wsdl URL --dialect gt4|wsrf12 --key K --destroy-key D "
                    + "--termination DATETIME [--query XPATH]; missing " + required);
                System.exit(2);
            }
        }
        Dialect d = "gt4".equals(args.get("--dialect")) ? GT4 : WSRF12;
        try {
            Document wsdl = load(args.get("--wsdl"));
            String address = soapAddress(wsdl);
            // Only the Ops of this dialect is compiled, with this dialect's stubs.
            Ops ops = (Ops) Class.forName(d == GT4 ? "vwsinterop.Gt4Ops" : "vwsinterop.Wsrf12Ops")
                .getDeclaredConstructor(URL.class).newInstance(new URL(address));
            Client c = new Client(d, ops, address, actions(wsdl, d, "GetResourceProperty", "GetMultipleResourceProperties",
                "QueryResourceProperties", "SetTerminationTime", "Destroy"));
            last = c;
            System.out.println(c.run(args));
        } catch (Failure f) {
            System.err.println("axis client: " + f.getMessage());
            System.err.println(last == null ? "" : last.exchange());
            System.exit(1);
        } catch (AxisFault f) {
            System.err.println("axis client: unexpected fault " + f.getFaultCode() + ": " + f.getFaultString());
            System.err.println(f.dumpToString());
            System.err.println(last == null ? "" : last.exchange());
            System.exit(1);
        }
    }

    private static Client last; // for diagnostics

    /** The last request and response as they went over the wire. */
    private String exchange() {
        return exchange(ops.stub(), current);
    }

    private String run(Map<String, String> args) throws Exception {
        String key = args.get("--key");
        String doomed = args.get("--destroy-key");
        Json out = new Json().field("dialect", d.name).field("address", address);

        before("GetResourceProperty", key);
        out.list("state", values(ops.getResourceProperty(new QName(VW, "state"))).get("{" + VW + "}state"));
        after();

        before("GetResourceProperty", key);
        out.list("name", values(ops.getResourceProperty(new QName(VW, "name"))).get("{" + VW + "}name"));
        after();

        before("GetMultipleResourceProperties", key);
        out.map("multiple", values(ops.getMultipleResourceProperties(new QName[] {
            new QName(VW, "name"), new QName(VW, "state"), new QName(VW, "owner"), new QName(d.rl, "TerminationTime")})));
        after();

        before("QueryResourceProperties", key);
        out.map("query", values(ops.queryResourceProperties(XPATH, args.get("--query"))));
        after();

        before("SetTerminationTime", key);
        Calendar[] stt = ops.setTerminationTime(parse(args.get("--termination")));
        after();
        out.raw("setTerminationTime", new Json()
            .field("new", stt[0] == null ? "xsi:nil" : format(stt[0]))
            .field("current", stt[1] == null ? "" : format(stt[1])).end());

        before("GetResourceProperty", key);
        out.list("terminationTime", values(ops.getResourceProperty(new QName(d.rl, "TerminationTime")))
            .get("{" + d.rl + "}TerminationTime"));
        after();

        before("GetResourceProperty", key);
        out.raw("invalidQNameFault", fault(new Call0() {
            public void call() throws RemoteException {
                ops.getResourceProperty(new QName(VW, "color"));
            }
        }).json());

        // A WS-Addressing fault (not a BaseFault the WSDL declares): Axis must still
        // read its namespaced faultcode, faultstring and addressing headers.
        before("GetResourceProperty", key, "urn:bogus");
        out.raw("actionNotSupportedFault", addressingFault("ActionNotSupported", new Call0() {
            public void call() throws RemoteException {
                ops.getResourceProperty(new QName(VW, "state"));
            }
        }));

        before("Destroy", doomed);
        ops.destroy();
        after();
        out.field("destroyed", doomed);

        before("GetResourceProperty", doomed);
        out.raw("afterDestroyFault", fault(new Call0() {
            public void call() throws RemoteException {
                ops.getResourceProperty(new QName(VW, "state"));
            }
        }).json());
        return out.end();
    }

    interface Call0 {
        void call() throws RemoteException;
    }

    /** Sets the request headers of the next call on the stub, as GT4 clients did. */
    private void before(String operation, String key) throws Exception {
        before(operation, key, actions.get(operation).input);
    }

    /** As before(operation, key), with wsa:Action action instead of the operation's. */
    private void before(String operation, String key, String action) throws Exception {
        current = operation;
        Stub stub = ops.stub();
        addressing(stub, d, address, action);
        SOAPHeaderElement k = new SOAPHeaderElement(VW, "WorkspaceKey", key);
        if (d == WSRF12) {
            // a reference parameter, marked as WS-Addressing 1.0 Core section 3.3 requires
            k.addAttribute("wsa", d.wsa, "IsReferenceParameter", "true");
        }
        stub.setHeader(k);
    }

    /** Checks the addressing headers of the response to the last call. */
    private void after() throws Failure {
        check(actions.get(current).output);
    }

    private String check(String wantAction) throws Failure {
        return checkReply(ops.stub(), d, current, wantAction);
    }

    /**
     * Clears the stub's headers and sets the WS-Addressing ones of a request to address
     * with action, as GT4 clients did.
     */
    static void addressing(Stub stub, Dialect d, String address, String action) throws javax.xml.soap.SOAPException {
        stub.clearHeaders();
        stub.setHeader(d.wsa, "To", address);
        stub.setHeader(d.wsa, "Action", action);
        stub.setHeader(d.wsa, "MessageID", (d == GT4 ? "uuid:" : "urn:uuid:") + UUID.randomUUID());
        SOAPHeaderElement from = new SOAPHeaderElement(d.wsa, "From");
        from.addChildElement("Address", "wsa", d.wsa).addTextNode(d.anonymous);
        stub.setHeader(from);
    }

    /**
     * Checks the addressing headers of the answer to the stub's last call (op): it
     * relates to the request's MessageID and carries wantAction; returns that action.
     */
    static String checkReply(Stub stub, Dialect d, String op, String wantAction) throws Failure {
        Call call = stub._getCall();
        Message req = call.getMessageContext().getRequestMessage();
        Message resp = call.getMessageContext().getResponseMessage();
        if (System.getenv("VWS_INTEROP_DUMP") != null) {
            System.err.println(exchange(stub, op));
        }
        if (resp == null) {
            throw new Failure(op + ": no response message");
        }
        try {
            String sent = header(req.getSOAPEnvelope(), d, "MessageID");
            String relatesTo = header(resp.getSOAPEnvelope(), d, "RelatesTo");
            String action = header(resp.getSOAPEnvelope(), d, "Action");
            if (sent == null || !sent.equals(relatesTo)) {
                throw new Failure(op + ": response wsa:RelatesTo " + relatesTo + " is not the request's wsa:MessageID " + sent);
            }
            if (wantAction == null || !wantAction.equals(action)) {
                throw new Failure(op + ": response wsa:Action is " + action + "; the WSDL names " + wantAction);
            }
            return action;
        } catch (Failure f) {
            throw f;
        } catch (Exception e) {
            throw new Failure(op + ": reading the response headers: " + e);
        }
    }

    private static String header(SOAPEnvelope env, Dialect d, String local) throws Exception {
        SOAPHeaderElement h = env.getHeaderByName(d.wsa, local);
        return h == null ? null : h.getValue().trim();
    }

    /** The stub's last request and response (op) as they went over the wire. */
    static String exchange(Stub stub, String op) {
        try {
            Call call = stub._getCall();
            if (call == null || call.getMessageContext() == null) {
                return "";
            }
            Message req = call.getMessageContext().getRequestMessage();
            Message resp = call.getMessageContext().getResponseMessage();
            return op + " request:\n" + (req == null ? "-" : req.getSOAPPartAsString())
                + "\n" + op + " response:\n" + (resp == null ? "-" : resp.getSOAPPartAsString());
        } catch (Exception e) {
            return "(cannot show the last exchange: " + e + ")";
        }
    }

    /** Runs a call that must fail with a typed BaseFault. */
    private Fault fault(Call0 c) throws Exception {
        try {
            c.call();
        } catch (RemoteException e) {
            Fault f = ops.fault(e);
            if (f == null) {
                String detail = e instanceof AxisFault ? ((AxisFault) e).dumpToString() : e.toString();
                throw new Failure(current + ": Axis did not map the fault to a generated BaseFault class: "
                    + e.getClass().getName() + "\n" + detail);
            }
            String name = f.type;
            f.action = check(actions.get(current).faults.get(name));
            return f;
        }
        throw new Failure(current + " succeeded but a fault was expected");
    }

    /**
     * Runs a call that must fail with the WS-Addressing fault {wsa}code, answered with
     * the addressing fault action and related to the request; returns it as JSON.
     */
    private String addressingFault(String code, Call0 c) throws Exception {
        try {
            c.call();
        } catch (AxisFault e) {
            QName got = e.getFaultCode();
            if (got == null || !d.wsa.equals(got.getNamespaceURI()) || !code.equals(got.getLocalPart())) {
                throw new Failure(current + ": faultcode " + got + ", want {" + d.wsa + "}" + code + "\n" + e.dumpToString());
            }
            String action = check(d.wsa + "/fault");
            return new Json().field("faultcode", got.getLocalPart()).field("namespace", got.getNamespaceURI())
                .field("faultstring", e.getFaultString()).field("action", action).end();
        }
        throw new Failure(current + " succeeded but a WS-Addressing fault was expected");
    }

    /** Property elements by {ns}local: their text, or "xsi:nil". */
    static Map<String, List<String>> values(MessageElement[] any) {
        Map<String, List<String>> out = new LinkedHashMap<String, List<String>>();
        if (any == null) {
            return out;
        }
        for (MessageElement m : any) {
            String k = "{" + m.getNamespaceURI() + "}" + m.getLocalName();
            List<String> vs = out.get(k);
            if (vs == null) {
                vs = new ArrayList<String>();
                out.put(k, vs);
            }
            String nil = m.getAttributeNS(XSI, "nil");
            vs.add("true".equals(nil) || "1".equals(nil) ? "xsi:nil" : (m.getValue() == null ? "" : m.getValue().trim()));
        }
        return out;
    }

    /** Mixed content holding only text, as the generated beans represent it. */
    static MessageElement[] mixedText(String text) {
        return new MessageElement[] {new MessageElement(new Text(text))};
    }

    /**
     * The wsdl:fault of the last call's operation whose generated exception class Axis
     * threw, or null.
     */
    static FaultDesc faultDesc(Stub stub, Exception e) {
        Call call = stub._getCall();
        if (call == null || call.getOperation() == null) {
            return null;
        }
        return call.getOperation().getFaultByClass(e.getClass());
    }

    static String format(Calendar c) {
        SimpleDateFormat f = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'");
        f.setTimeZone(TimeZone.getTimeZone("UTC"));
        return f.format(c.getTime());
    }

    static Calendar parse(String s) throws Exception {
        SimpleDateFormat f = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ssX");
        Calendar c = Calendar.getInstance(TimeZone.getTimeZone("UTC"));
        c.setTime(f.parse(s));
        return c;
    }

    static Document load(String url) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        try (InputStream in = new URL(url).openStream()) {
            return f.newDocumentBuilder().parse(in);
        }
    }

    static String soapAddress(Document wsdl) throws Failure {
        NodeList l = wsdl.getElementsByTagNameNS(WSDL_SOAP, "address");
        if (l.getLength() != 1) {
            throw new Failure("the WSDL has " + l.getLength() + " soap:address elements, want 1");
        }
        return ((Element) l.item(0)).getAttribute("location");
    }

    /**
     * The actions each portType operation names on its input, output and faults; the
     * required operations must name them on input and output.
     */
    static Map<String, Actions> actions(Document wsdl, Dialect d, String... required) throws Failure {
        Map<String, Actions> out = new HashMap<String, Actions>();
        NodeList pts = wsdl.getElementsByTagNameNS(WSDL, "portType");
        for (int i = 0; i < pts.getLength(); i++) {
            for (Node op = pts.item(i).getFirstChild(); op != null; op = op.getNextSibling()) {
                if (!(op instanceof Element) || !"operation".equals(op.getLocalName())) {
                    continue;
                }
                Actions a = new Actions();
                for (Node m = op.getFirstChild(); m != null; m = m.getNextSibling()) {
                    if (!(m instanceof Element)) {
                        continue;
                    }
                    Element e = (Element) m;
                    String action = e.hasAttributeNS(d.actionAttr, "Action") ? e.getAttributeNS(d.actionAttr, "Action") : null;
                    if ("input".equals(e.getLocalName())) {
                        a.input = action;
                    } else if ("output".equals(e.getLocalName())) {
                        a.output = action;
                    } else if ("fault".equals(e.getLocalName())) {
                        a.faults.put(e.getAttribute("name"), action);
                    }
                }
                out.put(((Element) op).getAttribute("name"), a);
            }
        }
        for (String op : required) {
            Actions a = out.get(op);
            if (a == null || a.input == null || a.output == null) {
                throw new Failure("the WSDL's portType names no {" + d.actionAttr + "}Action on " + op + "'s input and output");
            }
        }
        return out;
    }
}
