package vwsinterop;

import java.net.URL;
import java.rmi.RemoteException;

import javax.xml.namespace.QName;

import org.apache.axis.description.FaultDesc;
import org.apache.axis.message.MessageElement;
import org.oasis_open.docs.wsrf.bf_2.BaseFaultType;
import org.oasis_open.docs.wsrf.bf_2.BaseFaultTypeDescription;

/** The Manager's WSRF 1.2 stubs (rp-2, bf-2, W3C WS-Addressing). */
final class Wsrf12MgrOps extends MgrOps {
    Wsrf12MgrOps(URL address) throws Exception {
        super(address);
    }

    MessageElement[] getResourceProperty(QName property) throws RemoteException {
        return port.getResourceProperty(property).get_any();
    }

    Fault baseFault(RemoteException e) {
        if (!(e instanceof BaseFaultType)) {
            return null;
        }
        BaseFaultType bf = (BaseFaultType) e;
        FaultDesc desc = Client.faultDesc(port, bf);
        if (desc == null) {
            return null;
        }
        Fault f = Fault.of(bf, desc, bf.getTimestamp());
        if (bf.getErrorCode() != null) {
            f.errorCode = Fault.text(bf.getErrorCode().get_any());
            f.errorCodeDialect = String.valueOf(bf.getErrorCode().getDialect());
        }
        StringBuilder d = new StringBuilder();
        if (bf.getDescription() != null) {
            for (BaseFaultTypeDescription x : bf.getDescription()) {
                d.append(d.length() == 0 ? "" : " ").append(x.get_value());
            }
        }
        f.description = d.toString();
        f.originatorAddress = bf.getOriginator() == null || bf.getOriginator().getAddress() == null ? ""
            : String.valueOf(bf.getOriginator().getAddress().get_value());
        return f;
    }
}
