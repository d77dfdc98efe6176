package vwsinterop;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.rmi.RemoteException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.regex.Pattern;

import javax.xml.parsers.DocumentBuilderFactory;

import org.apache.axis.AxisFault;
import org.apache.axis.message.MessageElement;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

import dev.vws.ns._2026.manager.DeployedWorkspaceType;

/**
 * Drives a workspace through a VW Manager with the Apache Axis 1.4 stubs WSDL2Java -W
 * generated from the Manager's live ?wsdl URL, step by step, as test/interop/zeep_manager.py
 * does with zeep (same arguments, same steps, same report lines; see that script for the
 * scenario).
 *
 * <pre>
 * java vwsinterop.ManagerClient --wsdl URL --dialect gt4|wsrf12 --epr FILE --expect TEXT
 *      [--shutdown-mode Normal|Trash] [--grace DURATION] [--timeout SECONDS]
 * </pre>
 *
 * The workspace is named by an EPR file (a wsa:EndpointReference document in the
 * dialect's WS-Addressing version); its children go, as they are, into the generated
 * EndpointReferenceContainerType bean's _any. The Manager is a singleton service: the
 * addressing headers are set with Stub.setHeader as GT 4.0 clients did, with no resource
 * key. After each step one line of JSON goes to stdout, and the next step waits for
 * "ok" on stdin.
 */
public final class ManagerClient {
    static final Pattern TICK = Pattern.compile("^tick \\d+\\s*$", Pattern.MULTILINE);
    static final String[] REQUIRED_OPS = {"GetResourceProperty", "Deploy", "Start", "Pause", "Unpause", "Shutdown", "Undeploy"};

    private final Client.Dialect d;
    private final MgrOps ops;
    private final String address;
    private final Map<String, Client.Actions> actions;
    private final Map<String, String> args;
    private final BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    private final List<Element> epr = new ArrayList<Element>(); // the EPR file's children
    private String key;
    private String current; // the operation of the last call

    private ManagerClient(Client.Dialect d, MgrOps ops, String address, Map<String, Client.Actions> actions,
            Map<String, String> args) {
        this.d = d;
        this.ops = ops;
        this.address = address;
        this.actions = actions;
        this.args = args;
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<String, String>();
        args.put("--shutdown-mode", "Trash");
        args.put("--grace", "");
        args.put("--timeout", "60");
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i], argv[i + 1]);
        }
        for (String required : new String[] {"--wsdl", "--dialect", "--epr", "--expect"}) {
            if (!args.containsKey(required)) {
                System.err.println("usage: ManagerClient --wsdl URL --dialect gt4|wsrf12 --epr FILE --expect TEXT "
                    + "[--shutdown-mode Normal|Trash] [--grace DURATION] [--timeout SECONDS]; missing " + required);
                System.exit(2);
            }
        }
        Client.Dialect d = "gt4".equals(args.get("--dialect")) ? Client.GT4 : Client.WSRF12;
        ManagerClient c = null;
        try {
            Document wsdl = Client.load(args.get("--wsdl"));
            String address = Client.soapAddress(wsdl);
            // Only the MgrOps of this dialect is compiled, with this dialect's stubs.
            MgrOps ops = (MgrOps) Class.forName(d == Client.GT4 ? "vwsinterop.Gt4MgrOps" : "vwsinterop.Wsrf12MgrOps")
                .getDeclaredConstructor(URL.class).newInstance(new URL(address));
            c = new ManagerClient(d, ops, address, Client.actions(wsdl, d, REQUIRED_OPS), args);
            c.readEPR(args.get("--epr"));
            c.scenario();
        } catch (Client.Failure f) {
            System.err.println("axis manager client: " + f.getMessage());
            System.err.println(c == null ? "" : c.exchange());
            System.exit(1);
        } catch (AxisFault f) {
            System.err.println("axis manager client: unexpected fault " + f.getFaultCode() + ": " + f.getFaultString());
            System.err.println(f.dumpToString());
            System.err.println(c == null ? "" : c.exchange());
            System.exit(1);
        }
        System.out.println("{\"step\": \"done\"}");
        System.out.flush();
    }

    private void scenario() throws Exception {
        before("Deploy");
        String[] r = ops.deploy(refs(epr), null);
        after();
        report("deploy", new Json().field("state", r[0]).field("deployment", r[1]).field("host", r[2]));

        report("pauseFault", new Json().raw("fault", fault("Pause", epr)));

        before("Start");
        String st = ops.start(refs(epr));
        after();
        report("start", new Json().field("state", st));

        final String expect = args.get("--expect");
        report("console", waitTail(new Json(), "'" + expect + "'", new Accept() {
            public boolean ok(String tail) {
                return tail.contains(expect) && TICK.matcher(tail).find();
            }
        }));

        before("Pause");
        st = ops.pause(refs(epr));
        after();
        report("pause", new Json().field("state", st));

        before("Unpause");
        st = ops.unpause(refs(epr));
        after();
        report("unpause", new Json().field("state", st));

        before("Shutdown");
        st = ops.shutdown(refs(epr), "Serialize", null);
        after();
        report("serialize", new Json().field("state", st));

        before("Undeploy");
        r = ops.undeploy(refs(epr));
        after();
        report("undeploy", new Json().field("state", r[0]).field("deployment", r[1]).field("overlayDigest", r[2]));

        before("Deploy");
        r = ops.deploy(refs(epr), "running");
        after();
        report("restore", waitTail(new Json().field("state", r[0]).field("deployment", r[1]).field("host", r[2]),
            "a tick line", new Accept() {
                public boolean ok(String tail) {
                    return TICK.matcher(tail).find();
                }
            }));

        String grace = args.get("--grace");
        before("Shutdown");
        st = ops.shutdown(refs(epr), args.get("--shutdown-mode"), grace.isEmpty() ? null : grace);
        after();
        report("shutdown", new Json().field("state", st));

        before("Undeploy");
        r = ops.undeploy(refs(epr));
        after();
        report("undeployAgain", new Json().field("state", r[0]).field("deployment", r[1]).field("overlayDigest", r[2]));

        // The same EPR with a key no workspace has.
        String unknown = "no-such-" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
        List<Element> other = new ArrayList<Element>();
        for (Element e : epr) {
            Element c = (Element) e.cloneNode(true);
            NodeList keys = c.getElementsByTagNameNS(Client.VW, "WorkspaceKey");
            for (int i = 0; i < keys.getLength(); i++) {
                keys.item(i).setTextContent(unknown);
            }
            other.add(c);
        }
        report("unknownFault", new Json().raw("fault", fault("Deploy", other)).field("key", unknown));

        // A reference with a misspelt Address: not an EPR of any version.
        List<Element> garbled = new ArrayList<Element>();
        Element adress = epr.get(0).getOwnerDocument().createElementNS(d.wsa, "wsa:Adress");
        adress.setTextContent(epr.get(0).getTextContent());
        garbled.add(adress);
        garbled.addAll(epr.subList(1, epr.size()));
        report("garbledFault", new Json().raw("fault", fault("Deploy", garbled)));
    }

    interface Accept {
        boolean ok(String tail);
    }

    /** Polls the workspace's ConsoleTail in DeployedWorkspaces until ok accepts it. */
    private Json waitTail(Json out, String what, Accept ok) throws Exception {
        long deadline = System.nanoTime() + (long) (Double.parseDouble(args.get("--timeout")) * 1e9);
        for (int polls = 1; ; polls++) {
            before("GetResourceProperty");
            DeployedWorkspaceType w = null;
            for (DeployedWorkspaceType x : ops.deployedWorkspaces()) {
                if (key.equals(x.getKey())) {
                    w = x;
                }
            }
            after();
            String tail = w == null || w.getConsoleTail() == null ? "" : w.getConsoleTail();
            if (ok.ok(tail)) {
                return out.field("tail", tail).field("hostState", w == null ? null : MgrOps.str(w.getState()))
                    .raw("polls", String.valueOf(polls));
            }
            if (System.nanoTime() > deadline) {
                throw new Client.Failure("the ConsoleTail did not show " + what + " within " + args.get("--timeout")
                    + "s; it shows " + Json.quote(tail));
            }
            Thread.sleep(300);
        }
    }

    /** Prints the step's report on one line and waits for the caller's go-ahead. */
    private void report(String step, Json fields) throws Exception {
        // Json breaks lines between fields only; the values' newlines are escaped.
        System.out.println(fields.field("step", step).end().replace("\n", ""));
        System.out.flush();
        String answer = stdin.readLine();
        if (!"ok".equals(answer == null ? null : answer.trim())) {
            throw new Client.Failure("the caller stopped the scenario after " + step + ": " + answer);
        }
    }

    /** Runs op with the reference, which must fail with a typed BaseFault; its JSON. */
    private String fault(String op, List<Element> ref) throws Exception {
        before(op);
        try {
            if ("Pause".equals(op)) {
                ops.pause(refs(ref));
            } else {
                ops.deploy(refs(ref), null);
            }
        } catch (RemoteException e) {
            Fault f = ops.baseFault(e);
            if (f == null) {
                String detail = e instanceof AxisFault ? ((AxisFault) e).dumpToString() : e.toString();
                throw new Client.Failure(op + ": Axis did not map the fault to a generated BaseFault class: "
                    + e.getClass().getName() + "\n" + detail);
            }
            f.action = check(actions.get(op).faults.get(f.type));
            String[] states = MgrOps.states(e);
            return new Json()
                .field("type", f.type)
                .field("namespace", f.namespace)
                .field("faultcode", f.faultCode)
                .field("errorCode", f.errorCode)
                .field("errorCodeDialect", f.errorCodeDialect)
                .field("description", f.description)
                .field("timestamp", f.timestamp)
                .field("originatorAddress", f.originatorAddress)
                .field("action", f.action)
                .field("CurrentState", states[0])
                .field("RequestedState", states[1])
                .end();
        }
        throw new Client.Failure(op + " succeeded but a fault was expected");
    }

    /** The elements as the generated bean's _any: fresh copies for each request. */
    private static MessageElement[] refs(List<Element> ref) {
        MessageElement[] out = new MessageElement[ref.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = new MessageElement(ref.get(i));
        }
        return out;
    }

    /** Reads the EPR file: its children and its WorkspaceKey reference. */
    private void readEPR(String path) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Element root = f.newDocumentBuilder().parse(new java.io.File(path)).getDocumentElement();
        if (!d.wsa.equals(root.getNamespaceURI()) || !"EndpointReference".equals(root.getLocalName())) {
            throw new Client.Failure(path + " holds {" + root.getNamespaceURI() + "}" + root.getLocalName()
                + ", not a " + d.wsa + " EndpointReference");
        }
        String refs = d == Client.GT4 ? "ReferenceProperties" : "ReferenceParameters";
        for (Node n = root.getFirstChild(); n != null; n = n.getNextSibling()) {
            if (!(n instanceof Element)) {
                continue;
            }
            Element e = (Element) n;
            epr.add(e);
            if (d.wsa.equals(e.getNamespaceURI()) && refs.equals(e.getLocalName())) {
                NodeList k = e.getElementsByTagNameNS(Client.VW, "WorkspaceKey");
                if (k.getLength() == 1) {
                    key = k.item(0).getTextContent().trim();
                }
            }
        }
        if (key == null) {
            throw new Client.Failure(path + " has no vw:WorkspaceKey reference");
        }
    }

    /** Sets the addressing headers of the next call on the stub, as GT4 clients did. */
    private void before(String operation) {
        current = operation;
        try {
            Client.addressing(ops.stub(), d, address, actions.get(operation).input);
        } catch (javax.xml.soap.SOAPException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Checks the addressing headers of the response to the last call. */
    private void after() throws Client.Failure {
        check(actions.get(current).output);
    }

    private String check(String wantAction) throws Client.Failure {
        return Client.checkReply(ops.stub(), d, current, wantAction);
    }

    /** The last request and response as they went over the wire. */
    private String exchange() {
        return Client.exchange(ops.stub(), current);
    }
}
