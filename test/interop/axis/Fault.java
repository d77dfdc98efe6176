package vwsinterop;

import java.util.Calendar;

import org.apache.axis.AxisFault;
import org.apache.axis.description.FaultDesc;
import org.apache.axis.message.MessageElement;

/** A fault as the client understood it: the BaseFault subtype and its fields. */
final class Fault {
    String type;
    String namespace;
    String faultCode;
    String errorCode;
    String errorCodeDialect;
    String description;
    String timestamp;
    String originatorAddress;
    String action;

    /**
     * Starts a Fault from the typed exception Axis threw and the wsdl:fault of the
     * operation that Axis mapped it from (the FaultDesc the generated stub registered:
     * fault element QName, exception class).
     */
    static Fault of(AxisFault typed, FaultDesc desc, Calendar timestamp) {
        Fault f = new Fault();
        f.type = desc.getQName().getLocalPart();
        f.namespace = desc.getQName().getNamespaceURI();
        f.faultCode = typed.getFaultCode() == null ? "" : typed.getFaultCode().getLocalPart();
        f.timestamp = timestamp == null ? "" : Client.format(timestamp);
        return f;
    }

    /**
     * A Fault from a WS-BaseFaults fault bean of either dialect. The GT 4.0 (1.2 draft
     * 01) and WSRF 1.2 (bf-2) stubs generate same-shaped BaseFaultType classes in
     * different packages with no common type, so their fields are read by name.
     */
    static Fault ofBaseFault(AxisFault bf, FaultDesc desc) {
        if (desc == null) {
            return null;
        }
        try {
            Fault f = of(bf, desc, (Calendar) get(bf, "getTimestamp"));
            Object code = get(bf, "getErrorCode");
            if (code != null) {
                f.errorCode = text((MessageElement[]) get(code, "get_any"));
                f.errorCodeDialect = String.valueOf(get(code, "getDialect"));
            }
            StringBuilder d = new StringBuilder();
            Object[] descriptions = (Object[]) get(bf, "getDescription");
            if (descriptions != null) {
                for (Object x : descriptions) {
                    d.append(d.length() == 0 ? "" : " ").append(get(x, "get_value"));
                }
            }
            f.description = d.toString();
            Object originator = get(bf, "getOriginator");
            Object address = originator == null ? null : get(originator, "getAddress");
            f.originatorAddress = address == null ? "" : String.valueOf(get(address, "get_value"));
            return f;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("the stub's BaseFaultType lacks a WS-BaseFaults field: " + e, e);
        }
    }

    private static Object get(Object bean, String getter) throws ReflectiveOperationException {
        return bean.getClass().getMethod(getter).invoke(bean);
    }

    /**
     * The text of mixed content (ErrorCode extends xs:anyType, mixed="true"), which the
     * generated bean holds as MessageElements in _any: text nodes and elements.
     */
    static String text(MessageElement[] any) {
        if (any == null) {
            return "";
        }
        StringBuilder b = new StringBuilder();
        for (MessageElement m : any) {
            b.append(m.getValue() != null ? m.getValue() : m.toString());
        }
        return b.toString().trim();
    }

    String json() {
        return new Json()
            .field("type", type)
            .field("namespace", namespace)
            .field("faultcode", faultCode)
            .field("errorCode", errorCode)
            .field("errorCodeDialect", errorCodeDialect)
            .field("description", description)
            .field("timestamp", timestamp)
            .field("originatorAddress", originatorAddress)
            .field("action", action)
            .end();
    }
}
