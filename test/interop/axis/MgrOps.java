package vwsinterop;

import java.net.URL;
import java.rmi.RemoteException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

import javax.xml.namespace.QName;

import org.apache.axis.client.Stub;
import org.apache.axis.message.MessageElement;

import dev.vws.ns._2026.faults.WorkspaceStateFaultType;
import dev.vws.ns._2026.manager.Deploy;
import dev.vws.ns._2026.manager.DeployResponse;
import dev.vws.ns._2026.manager.DeployedWorkspaceType;
import dev.vws.ns._2026.manager.Pause;
import dev.vws.ns._2026.manager.Shutdown;
import dev.vws.ns._2026.manager.ShutdownMode;
import dev.vws.ns._2026.manager.Start;
import dev.vws.ns._2026.manager.Undeploy;
import dev.vws.ns._2026.manager.UndeployResponse;
import dev.vws.ns._2026.manager.Unpause;
import dev.vws.ns._2026.manager.WorkspaceManagerPortTypeSOAPBindingStub;
import dev.vws.ns._2026.manager.WorkspaceManagerServiceLocator;
import dev.vws.ns._2026.workspace.EndpointReferenceContainerType;
import dev.vws.ns._2026.workspace.WorkspaceState;

/**
 * WorkspaceManagerService through the stub WSDL2Java generated for one dialect. The
 * Manager's own messages map to the same Java package in both dialects, so the
 * operations live here; what differs (the WS-RP response and the BaseFault classes) is
 * in Gt4MgrOps and Wsrf12MgrOps, of which only the one of the dialect is compiled.
 */
abstract class MgrOps {
    static final String MGR = "http://vws.dev/ns/2026/manager";

    final WorkspaceManagerPortTypeSOAPBindingStub port;

    MgrOps(URL address) throws Exception {
        port = (WorkspaceManagerPortTypeSOAPBindingStub) new WorkspaceManagerServiceLocator().getWorkspaceManagerPort(address);
    }

    /** GetResourceProperty: the property elements of the response. */
    abstract MessageElement[] getResourceProperty(QName property) throws RemoteException;

    /**
     * The typed BaseFault that Axis deserialized the fault detail to, with its fields, or
     * null when Axis did not map the fault to one of the generated fault classes.
     */
    abstract Fault baseFault(RemoteException e);

    Stub stub() {
        return port;
    }

    /** The reference as the generated bean carries it: the EPR's children in _any. */
    static EndpointReferenceContainerType ref(MessageElement[] epr) {
        return new EndpointReferenceContainerType(epr);
    }

    /** Deploy: State, Deployment and Host of the response. */
    String[] deploy(MessageElement[] epr, String initialState) throws RemoteException {
        DeployResponse r = port.deploy(new Deploy(ref(epr),
            initialState == null ? null : WorkspaceState.fromValue(initialState)));
        return new String[] {str(r.getState()), str(r.getDeployment()), r.getHost()};
    }

    String start(MessageElement[] epr) throws RemoteException {
        return str(port.start(new Start(ref(epr))).getState());
    }

    String pause(MessageElement[] epr) throws RemoteException {
        return str(port.pause(new Pause(ref(epr))).getState());
    }

    String unpause(MessageElement[] epr) throws RemoteException {
        return str(port.unpause(new Unpause(ref(epr))).getState());
    }

    String shutdown(MessageElement[] epr, String mode, String grace) throws RemoteException {
        return str(port.shutdown(new Shutdown(ref(epr), ShutdownMode.fromValue(mode), grace)).getState());
    }

    /** Undeploy: State, Deployment and OverlayDigest (null when absent) of the response. */
    String[] undeploy(MessageElement[] epr) throws RemoteException {
        UndeployResponse r = port.undeploy(new Undeploy(ref(epr)));
        return new String[] {str(r.getState()), str(r.getDeployment()), r.getOverlayDigest()};
    }

    /**
     * The mgr:Workspace entries of the host's DeployedWorkspaces property, each
     * deserialized by Axis with the bean mapping the stub registered for
     * mgr:DeployedWorkspaceType. (Not the property as a whole: the stub maps
     * mgr:DeployedWorkspacesType to a DeployedWorkspaceType[] whose ArrayDeserializer
     * knows no item type outside a bean property, and reads each child as xs:anyType.)
     */
    DeployedWorkspaceType[] deployedWorkspaces() throws Exception {
        MessageElement[] got = getResourceProperty(new QName(MGR, "DeployedWorkspaces"));
        if (got == null || got.length != 1 || !MGR.equals(got[0].getNamespaceURI())
                || !"DeployedWorkspaces".equals(got[0].getLocalName())) {
            throw new Client.Failure("GetResourceProperty mgr:DeployedWorkspaces returned "
                + (got == null ? "nothing" : got.length + " elements"));
        }
        List<DeployedWorkspaceType> out = new ArrayList<DeployedWorkspaceType>();
        for (Iterator<?> it = got[0].getChildElements(); it.hasNext(); ) {
            Object c = it.next();
            if (!(c instanceof MessageElement)) {
                continue; // whitespace
            }
            MessageElement m = (MessageElement) c;
            if (!MGR.equals(m.getNamespaceURI()) || !"Workspace".equals(m.getLocalName())) {
                throw new Client.Failure("mgr:DeployedWorkspaces holds {" + m.getNamespaceURI() + "}" + m.getLocalName());
            }
            Object v = m.getValueAsType(new QName(MGR, "DeployedWorkspaceType"), DeployedWorkspaceType.class);
            if (!(v instanceof DeployedWorkspaceType)) {
                throw new Client.Failure("Axis read mgr:Workspace as " + (v == null ? "null" : v.getClass().getName()));
            }
            out.add((DeployedWorkspaceType) v);
        }
        return out.toArray(new DeployedWorkspaceType[0]);
    }

    /**
     * CurrentState and RequestedState of a WorkspaceStateFault, as the generated fault
     * class holds them; empty for any other fault.
     */
    static String[] states(RemoteException e) {
        if (!(e instanceof WorkspaceStateFaultType)) {
            return new String[] {"", ""};
        }
        WorkspaceStateFaultType s = (WorkspaceStateFaultType) e;
        return new String[] {s.getCurrentState(), s.getRequestedState()};
    }

    static String str(Object o) {
        return o == null ? null : o.toString();
    }
}
