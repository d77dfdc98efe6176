package vwsinterop;

import java.net.URL;
import java.rmi.RemoteException;

import javax.xml.namespace.QName;

import org.apache.axis.message.MessageElement;
import org.oasis_open.docs.wsrf._2004._06.wsrf_WS_BaseFaults_1_2_draft_01_xsd.BaseFaultType;

/** The Manager's GT 4.0 stubs (WS-RP and WS-BaseFaults 1.2 draft 01, WS-Addressing 2004/03). */
final class Gt4MgrOps extends MgrOps {
    Gt4MgrOps(URL address) throws Exception {
        super(address);
    }

    MessageElement[] getResourceProperty(QName property) throws RemoteException {
        return port.getResourceProperty(property).get_any();
    }

    Fault baseFault(RemoteException e) {
        return e instanceof BaseFaultType ? Fault.ofBaseFault((BaseFaultType) e, Client.faultDesc(port, e)) : null;
    }
}
