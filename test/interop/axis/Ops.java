package vwsinterop;

import java.rmi.RemoteException;
import java.util.Calendar;

import javax.xml.namespace.QName;

import org.apache.axis.client.Stub;
import org.apache.axis.message.MessageElement;

/**
 * The five WSRF operations through the stub WSDL2Java generated for one dialect. The
 * generated classes of the two dialects live in different Java packages, so each
 * dialect has its own implementation (Gt4Ops, Wsrf12Ops); only one is compiled with the
 * stubs of its dialect.
 */
interface Ops {
    /** The generated stub, for headers and the last Call. */
    Stub stub();

    /** GetResourceProperty: the property elements of the response. */
    MessageElement[] getResourceProperty(QName property) throws RemoteException;

    /** GetMultipleResourceProperties: the property elements of the response. */
    MessageElement[] getMultipleResourceProperties(QName[] properties) throws RemoteException;

    /** QueryResourceProperties with an expression in a dialect: the result elements. */
    MessageElement[] queryResourceProperties(String dialect, String expression) throws RemoteException;

    /** SetTerminationTime: NewTerminationTime and CurrentTime of the response. */
    Calendar[] setTerminationTime(Calendar requested) throws RemoteException;

    /** Destroy. */
    void destroy() throws RemoteException;

    /**
     * The typed BaseFault that Axis deserialized the fault detail to, or null when Axis
     * did not map the fault to one of the generated fault classes.
     */
    Fault fault(RemoteException e);
}
