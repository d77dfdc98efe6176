package client

import (
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// contracts caches parsed WSDLs by file.
var contracts sync.Map

// operation finds the WSDL operation op of the service epr addresses, so the client
// uses the same action URIs the service dispatches on. Services vws does not know
// are assumed to use the standard WSRF actions of WorkspaceService.
func operation(epr *wsa.EPR, op string) (*contract.Operation, error) {
	d := DialectOf(epr)
	svc := path.Base(strings.TrimRight(addrPath(epr.Address), "/"))
	switch svc {
	case vwsns.FactoryService, vwsns.WorkspaceService, vwsns.RepositoryService, vwsns.ManagerService,
		vwsns.SubscriptionManagerService:
	default:
		svc = vwsns.WorkspaceService
	}
	file := "wsdl/" + d.WSDLDir + "/" + svc + ".wsdl"
	var c *contract.Service
	if v, ok := contracts.Load(file); ok {
		c = v.(*contract.Service)
	} else {
		var err error
		if c, err = contract.Load(contract.FS, file); err != nil {
			return nil, err
		}
		contracts.Store(file, c)
	}
	for _, o := range c.Operations {
		if o.Name == op {
			return o, nil
		}
	}
	return nil, fmt.Errorf("%s has no operation %s", svc, op)
}

func addrPath(addr string) string {
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
		if j := strings.IndexByte(addr, '/'); j >= 0 {
			return addr[j:]
		}
		return "/"
	}
	return addr
}

// Invoke calls operation op of the service at epr with body.
func (c *Client) Invoke(ctx context.Context, epr *wsa.EPR, op string, body *etree.Element) (*etree.Element, error) {
	o, err := operation(epr, op)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	return c.Call(ctx, epr, o.InputAction, body)
}

func rpElement(d *dialect.Dialect, ns, local string) *etree.Element {
	el := etree.NewElement("wsrp:" + local)
	el.CreateAttr("xmlns:wsrp", ns)
	return el
}

// qnameText writes q as prefixed content of el, declaring the prefix on el.
func qnameText(el *etree.Element, q wsa.QName) {
	if q.Space == "" {
		el.SetText(q.Local)
		return
	}
	el.CreateAttr("xmlns:pns", q.Space)
	el.SetText("pns:" + q.Local)
}

// GetResourceProperty returns the instances of property q.
func (c *Client) GetResourceProperty(ctx context.Context, epr *wsa.EPR, q wsa.QName) ([]*etree.Element, error) {
	d := DialectOf(epr)
	body := rpElement(d, d.RP, "GetResourceProperty")
	qnameText(body, q)
	resp, err := c.Invoke(ctx, epr, "GetResourceProperty", body)
	if err != nil {
		return nil, err
	}
	return resp.ChildElements(), nil
}

// GetMultipleResourceProperties returns the instances of every property in qs.
func (c *Client) GetMultipleResourceProperties(ctx context.Context, epr *wsa.EPR, qs []wsa.QName) ([]*etree.Element, error) {
	d := DialectOf(epr)
	body := rpElement(d, d.RP, "GetMultipleResourceProperties")
	for _, q := range qs {
		qnameText(body.CreateElement("wsrp:ResourceProperty"), q)
	}
	resp, err := c.Invoke(ctx, epr, "GetMultipleResourceProperties", body)
	if err != nil {
		return nil, err
	}
	return resp.ChildElements(), nil
}

// QueryResourceProperties evaluates an XPath 1.0 expression over the property
// document; namespaces binds the prefixes it uses. The response element is returned
// whole, since a query may yield text as well as elements.
func (c *Client) QueryResourceProperties(ctx context.Context, epr *wsa.EPR, expr string, namespaces map[string]string) (*etree.Element, error) {
	d := DialectOf(epr)
	body := rpElement(d, d.RP, "QueryResourceProperties")
	qe := body.CreateElement("wsrp:QueryExpression")
	qe.CreateAttr("Dialect", dialect.XPathDialect)
	for p, ns := range namespaces {
		qe.CreateAttr("xmlns:"+p, ns)
	}
	qe.SetText(expr)
	return c.Invoke(ctx, epr, "QueryResourceProperties", body)
}

// SetTerminationTime asks for termination at t (nil: never) and returns the new
// termination time (nil: none) and the service's current time.
func (c *Client) SetTerminationTime(ctx context.Context, epr *wsa.EPR, t *time.Time) (newTime *time.Time, current time.Time, err error) {
	d := DialectOf(epr)
	body := rpElement(d, d.RL, "SetTerminationTime")
	rtt := body.CreateElement("wsrp:RequestedTerminationTime")
	if t == nil {
		rtt.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
		rtt.CreateAttr("xsi:nil", "true")
	} else {
		rtt.SetText(wsrf.FormatTime(*t))
	}
	resp, err := c.Invoke(ctx, epr, "SetTerminationTime", body)
	if err != nil {
		return nil, time.Time{}, err
	}
	for _, el := range resp.ChildElements() {
		switch el.Tag {
		case "NewTerminationTime":
			if s := strings.TrimSpace(el.Text()); s != "" {
				nt, err := wsrf.ParseDateTime(s)
				if err != nil {
					return nil, time.Time{}, fmt.Errorf("response NewTerminationTime: %w", err)
				}
				newTime = &nt
			}
		case "CurrentTime":
			current, err = wsrf.ParseDateTime(el.Text())
			if err != nil {
				return nil, time.Time{}, fmt.Errorf("response CurrentTime: %w", err)
			}
		}
	}
	return newTime, current, nil
}

// Destroy destroys the resource.
func (c *Client) Destroy(ctx context.Context, epr *wsa.EPR) error {
	d := DialectOf(epr)
	_, err := c.Invoke(ctx, epr, "Destroy", rpElement(d, d.RL, "Destroy"))
	return err
}
