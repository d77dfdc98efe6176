package vwsinterop;

import java.net.URL;
import java.rmi.RemoteException;

import javax.xml.namespace.QName;

import org.apache.axis.message.MessageElement;
import org.oasis_open.docs.wsrf.bf_2.BaseFaultType;

/** The Manager's WSRF 1.2 stubs (rp-2, bf-2, W3C WS-Addressing). */
final class Wsrf12MgrOps extends MgrOps {
    Wsrf12MgrOps(URL address) throws Exception {
        super(address);
    }

    MessageElement[] getResourceProperty(QName property) throws RemoteException {
        return port.getResourceProperty(property).get_any();
    }

    Fault baseFault(RemoteException e) {
        return e instanceof BaseFaultType ? Fault.ofBaseFault((BaseFaultType) e, Client.faultDesc(port, e)) : null;
    }
}
