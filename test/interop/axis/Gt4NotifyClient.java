package vwsinterop;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.rmi.RemoteException;
import java.util.HashMap;
import java.util.Map;

import javax.xml.namespace.QName;

import org.apache.axis.AxisFault;
import org.apache.axis.MessageContext;
import org.apache.axis.client.Stub;
import org.apache.axis.configuration.BasicClientConfig;
import org.apache.axis.handlers.BasicHandler;
import org.apache.axis.message.MessageElement;
import org.apache.axis.message.SOAPHeaderElement;
import org.apache.axis.types.URI;
import org.oasis_open.docs.wsn._2004._06.wsn_WS_BaseNotification_1_2_draft_01_xsd.Subscribe;
import org.oasis_open.docs.wsn._2004._06.wsn_WS_BaseNotification_1_2_draft_01_xsd.SubscribeResponse;
import org.oasis_open.docs.wsn._2004._06.wsn_WS_BaseNotification_1_2_draft_01_xsd.TopicExpressionType;
import org.oasis_open.docs.wsrf._2004._06.wsrf_WS_BaseFaults_1_2_draft_01_xsd.BaseFaultType;
import org.oasis_open.docs.wsrf._2004._06.wsrf_WS_ResourceLifetime_1_2_draft_01_xsd.Destroy;
import org.w3c.dom.Document;
import org.xmlsoap.schemas.ws._2004._03.addressing.AttributedURI;
import org.xmlsoap.schemas.ws._2004._03.addressing.EndpointReferenceType;
import org.xmlsoap.schemas.ws._2004._03.addressing.ReferencePropertiesType;

import dev.vws.ns._2026.notification.SubscriptionManagerPortTypeSOAPBindingStub;
import dev.vws.ns._2026.notification.SubscriptionManagerServiceLocator;
import dev.vws.ns._2026.workspace.WorkspacePortTypeSOAPBindingStub;
import dev.vws.ns._2026.workspace.WorkspaceServiceLocator;

/**
 * GT 4.0 WS-BaseNotification (1.2 draft 01) with Apache Axis 1.4: stubs WSDL2Java -W
 * generated from the live ?wsdl&amp;dialect=gt4 of WorkspaceService and of
 * SubscriptionManagerService, compiled together (their shared schema types land in the
 * same packages). Headers are set with Stub.setHeader as in Client.
 *
 * <pre>
 * java vwsinterop.Gt4NotifyClient --wsdl URL --sub-wsdl URL --key K --consumer URL
 * </pre>
 *
 * Steps (a line of JSON on stdout after each; the caller answers "ok" on stdin):
 * <dl>
 * <dt>subscribed</dt><dd>Subscribe to K's vw:state (Simple topic dialect) with the
 * ConsumerReference --consumer plus a reference property of the consumer's own
 * ({urn:vws-interop:consumer}ConsumerId); reports the SubscriptionReference. The caller
 * changes the state and checks its consumer got the Notify.</dd>
 * <dt>destroyed</dt><dd>Destroy on the SubscriptionReference (its address, its reference
 * properties copied into the header as they are), then GetResourceProperty vwn:Paused
 * on it, which must fault: the fault, as Client reports faults.</dd>
 * </dl>
 *
 * The Simple topic expression is a QName ("vw:state") in a mixed-content element, which
 * the generated TopicExpressionType bean holds as a text node: Axis 1.4 gives no way to
 * declare the prefix on or above that element from the bean (GT 4.0 shipped its own
 * serializer for it). A global request handler, the Axis mechanism GT4's
 * client-config.wsdd used for its addressing handlers, declares it on the envelope.
 */
public final class Gt4NotifyClient {
    static final String VWN = "http://vws.dev/ns/2026/notification";
    static final String BN = "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification-1.2-draft-01.xsd";
    static final String SIMPLE = "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple";
    static final String CONSUMER_NS = "urn:vws-interop:consumer";
    static final String CONSUMER_ID = "axis-consumer-4";

    private final Client.Dialect d = Client.GT4;
    private final BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    private Stub stub; // the stub of the last call
    private String current; // the operation of the last call

    /** Declares the vw prefix on every request's envelope. */
    public static final class DeclarePrefix extends BasicHandler {
        public void invoke(MessageContext mc) throws AxisFault {
            try {
                mc.getRequestMessage().getSOAPEnvelope().addNamespaceDeclaration("vw", Client.VW);
            } catch (Exception e) {
                throw AxisFault.makeFault(e);
            }
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = new HashMap<String, String>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            args.put(argv[i], argv[i + 1]);
        }
        for (String required : new String[] {"--wsdl", "--sub-wsdl", "--key", "--consumer"}) {
            if (!args.containsKey(required)) {
                System.err.println("usage: Gt4NotifyClient --wsdl URL --sub-wsdl URL --key K --consumer URL; missing " + required);
                System.exit(2);
            }
        }
        Gt4NotifyClient c = new Gt4NotifyClient();
        try {
            c.run(args);
        } catch (Client.Failure f) {
            System.err.println("axis notify client: " + f.getMessage());
            System.err.println(c.exchange());
            System.exit(1);
        } catch (AxisFault f) {
            System.err.println("axis notify client: unexpected fault " + f.getFaultCode() + ": " + f.getFaultString());
            System.err.println(f.dumpToString());
            System.err.println(c.exchange());
            System.exit(1);
        }
    }

    private void run(Map<String, String> args) throws Exception {
        // WorkspaceService: Subscribe
        Document wsdl = Client.load(args.get("--wsdl"));
        String wsAddress = Client.soapAddress(wsdl);
        Map<String, Client.Actions> wsActions = Client.actions(wsdl, d, "Subscribe");
        BasicClientConfig config = new BasicClientConfig();
        config.setGlobalRequest(new DeclarePrefix());
        WorkspacePortTypeSOAPBindingStub ws = (WorkspacePortTypeSOAPBindingStub)
            new WorkspaceServiceLocator(config).getWorkspacePort(new URL(wsAddress));

        Subscribe req = new Subscribe();
        EndpointReferenceType consumer = new EndpointReferenceType();
        consumer.setAddress(new AttributedURI(new URI(args.get("--consumer"))));
        MessageElement cid = new MessageElement(CONSUMER_NS, "ConsumerId");
        cid.addTextNode(CONSUMER_ID);
        consumer.setReferenceProperties(new ReferencePropertiesType(new MessageElement[] {cid}));
        req.setConsumerReference(consumer);
        TopicExpressionType topic = new TopicExpressionType();
        topic.setDialect(new URI(SIMPLE));
        topic.set_any(Client.mixedText("vw:state"));
        req.setTopicExpression(topic);
        req.setUseNotify(Boolean.TRUE);

        before(ws, wsAddress, "Subscribe", wsActions);
        SOAPHeaderElement key = new SOAPHeaderElement(Client.VW, "WorkspaceKey", args.get("--key"));
        ws.setHeader(key);
        SubscribeResponse resp = ws.subscribe(req);
        Client.checkReply(ws, d, current, wsActions.get("Subscribe").output);

        EndpointReferenceType sub = resp.getSubscriptionReference();
        if (sub == null || sub.getAddress() == null || sub.getReferenceProperties() == null
            || sub.getReferenceProperties().get_any() == null) {
            throw new Client.Failure("SubscribeResponse has no SubscriptionReference with an address and reference properties");
        }
        String subAddress = sub.getAddress().toString();
        MessageElement[] refs = sub.getReferenceProperties().get_any();
        Json refNames = new Json();
        String subKey = null;
        for (int i = 0; i < refs.length; i++) {
            refNames.field(String.valueOf(i), "{" + refs[i].getNamespaceURI() + "}" + refs[i].getLocalName());
            if (VWN.equals(refs[i].getNamespaceURI()) && "SubscriptionKey".equals(refs[i].getLocalName())) {
                subKey = refs[i].getValue();
            }
        }
        report("subscribed", new Json().field("address", subAddress).field("key", subKey).raw("references", refNames.end()));

        // SubscriptionManagerService: Destroy, then a GetResourceProperty that must fault
        Document subWSDL = Client.load(args.get("--sub-wsdl"));
        Map<String, Client.Actions> subActions = Client.actions(subWSDL, d, "GetResourceProperty", "Destroy");
        final SubscriptionManagerPortTypeSOAPBindingStub sm = (SubscriptionManagerPortTypeSOAPBindingStub)
            new SubscriptionManagerServiceLocator().getSubscriptionManagerPort(new URL(subAddress));

        before(sm, subAddress, "Destroy", subActions);
        refHeaders(sm, refs);
        sm.destroy(new Destroy());
        Client.checkReply(sm, d, current, subActions.get("Destroy").output);

        before(sm, subAddress, "GetResourceProperty", subActions);
        refHeaders(sm, refs);
        Fault f = null;
        try {
            sm.getResourceProperty(new QName(VWN, "Paused"));
        } catch (RemoteException e) {
            f = e instanceof BaseFaultType ? Fault.ofBaseFault((BaseFaultType) e, Client.faultDesc(sm, e)) : null;
            if (f == null) {
                String detail = e instanceof AxisFault ? ((AxisFault) e).dumpToString() : e.toString();
                throw new Client.Failure(current + ": Axis did not map the fault to a generated BaseFault class: "
                    + e.getClass().getName() + "\n" + detail);
            }
            f.action = Client.checkReply(sm, d, current, subActions.get(current).faults.get(f.type));
        }
        if (f == null) {
            throw new Client.Failure("GetResourceProperty on the destroyed subscription succeeded");
        }
        report("destroyed", new Json().raw("fault", f.json()));
    }

    /** The reference properties of an EPR, copied into the request's header as they are. */
    private static void refHeaders(Stub s, MessageElement[] refs) throws Exception {
        for (MessageElement r : refs) {
            s.setHeader(new SOAPHeaderElement(r.getAsDOM()));
        }
    }

    private void before(Stub s, String address, String operation, Map<String, Client.Actions> actions) throws Exception {
        stub = s;
        current = operation;
        Client.addressing(s, d, address, actions.get(operation).input);
    }

    private void report(String step, Json fields) throws Exception {
        System.out.println(fields.field("step", step).end().replace("\n", ""));
        System.out.flush();
        String answer = stdin.readLine();
        if (!"ok".equals(answer == null ? null : answer.trim())) {
            throw new Client.Failure("the caller stopped the scenario after " + step + ": " + answer);
        }
    }

    private String exchange() {
        return stub == null ? "" : Client.exchange(stub, current);
    }
}
