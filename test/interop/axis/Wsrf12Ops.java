package vwsinterop;

import java.net.URL;
import java.rmi.RemoteException;
import java.util.Calendar;

import javax.xml.namespace.QName;

import org.apache.axis.client.Stub;
import org.apache.axis.message.MessageElement;
import org.apache.axis.types.URI;
import org.oasis_open.docs.wsrf.bf_2.BaseFaultType;
import org.oasis_open.docs.wsrf.rl_2.Destroy;
import org.oasis_open.docs.wsrf.rl_2.SetTerminationTime;
import org.oasis_open.docs.wsrf.rl_2.SetTerminationTimeResponse;
import org.oasis_open.docs.wsrf.rp_2.QueryExpressionType;
import org.oasis_open.docs.wsrf.rp_2.QueryResourceProperties;

import dev.vws.ns._2026.workspace.WorkspacePortTypeSOAPBindingStub;
import dev.vws.ns._2026.workspace.WorkspaceServiceLocator;

/** The WSRF 1.2 stubs (rp-2, rl-2, bf-2, W3C WS-Addressing). */
final class Wsrf12Ops implements Ops {
    private final WorkspacePortTypeSOAPBindingStub port;

    Wsrf12Ops(URL address) throws Exception {
        port = (WorkspacePortTypeSOAPBindingStub) new WorkspaceServiceLocator().getWorkspacePort(address);
    }

    public Stub stub() {
        return port;
    }

    public MessageElement[] getResourceProperty(QName property) throws RemoteException {
        return port.getResourceProperty(property).get_any();
    }

    public MessageElement[] getMultipleResourceProperties(QName[] properties) throws RemoteException {
        return port.getMultipleResourceProperties(properties).get_any();
    }

    public MessageElement[] queryResourceProperties(String dialect, String expression) throws RemoteException {
        QueryExpressionType q = new QueryExpressionType();
        try {
            q.setDialect(new URI(dialect));
        } catch (URI.MalformedURIException e) {
            throw new IllegalArgumentException(dialect, e);
        }
        q.set_any(Client.mixedText(expression));
        return port.queryResourceProperties(new QueryResourceProperties(q)).get_any();
    }

    public Calendar[] setTerminationTime(Calendar requested) throws RemoteException {
        SetTerminationTime req = new SetTerminationTime();
        req.setRequestedTerminationTime(requested);
        SetTerminationTimeResponse r = port.setTerminationTime(req);
        return new Calendar[] {r.getNewTerminationTime(), r.getCurrentTime()};
    }

    public void destroy() throws RemoteException {
        port.destroy(new Destroy());
    }

    public Fault fault(RemoteException e) {
        return e instanceof BaseFaultType ? Fault.ofBaseFault((BaseFaultType) e, Client.faultDesc(port, e)) : null;
    }
}
