// Package client calls vws (and any WSRF) services: it addresses a request to an EPR in
// the EPR's dialect, and turns a SOAP fault into a *FaultError carrying its BaseFault.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// Client sends SOAP requests.
type Client struct {
	HTTP *http.Client
	// MaxResponseBytes bounds a response body. Default DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Signer, when set, signs every request (WS-Security X.509).
	Signer *wssec.Signer
	// Verifier, when set with Signer, requires the answers to signed requests to be
	// signed by a trusted service and checks them.
	Verifier *wssec.Verifier
}

// DefaultMaxResponseBytes bounds the answers a Client reads unless told otherwise. A
// server's components call each other with it (a Manager its Repositories, the
// Factory its Repository), and a parsed answer keeps up to ~30 bytes of tree per byte
// of empty elements, so it fits their largest legitimate answers with margin and no
// more: a CheckOut (the description, at most the Repository's 1 MiB --max-body, and
// 2 MiB of piece digests per TiB of image), the KnownHost of a thousand hosts or the
// ListImages of thousands of images (a few MB).
const DefaultMaxResponseBytes = 16 << 20

// New returns a client using hc (http.DefaultClient when nil).
func New(hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	return &Client{HTTP: hc}
}

// FaultError is a SOAP fault returned by a service.
type FaultError struct {
	HTTPStatus int
	Fault      *soap.Fault
	// Type is the BaseFault subtype's local name (e.g. "ResourceUnknownFault").
	Type        string
	ErrorCode   string
	Description string
}

func (e *FaultError) Error() string {
	desc := e.Description
	if desc == "" {
		desc = e.Fault.String
	}
	if strings.TrimSpace(desc) == "" {
		// Both are required, but a foreign service or a proxy may leave them out.
		desc = fmt.Sprintf("a fault with no faultstring (HTTP %d)", e.HTTPStatus)
	}
	if e.Type != "" {
		return e.Type + ": " + desc
	}
	code := string(e.Fault.Code)
	if code == "" {
		code = "Fault"
	}
	return "soap:" + code + ": " + desc
}

// ErrNotSent marks a call that failed before its request left this process (no
// operation of that name at the address, a request that cannot be encoded or
// signed): whatever the failure, the service did nothing.
var ErrNotSent = errors.New("the request was not sent")

// Call sends body to epr with action and returns the response body element.
func (c *Client) Call(ctx context.Context, epr *wsa.EPR, action string, body *etree.Element) (*etree.Element, error) {
	v := epr.Version
	headers := v.MessageHeaders(epr.Address, action)
	replyTo := etree.NewElement("wsa:ReplyTo")
	replyTo.CreateAttr("xmlns:wsa", v.Namespace())
	replyTo.CreateElement("wsa:Address").SetText(v.Anonymous())
	headers = append(headers, replyTo)
	headers = append(headers, epr.Headers()...)
	doc := (&soap.Message{Headers: headers, Body: body}).Document()
	if c.Signer != nil {
		if err := c.Signer.Sign(doc); err != nil {
			return nil, fmt.Errorf("%w: sign request: %w", ErrNotSent, err)
		}
	}
	data, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("%w: encode request: %w", ErrNotSent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, epr.Address, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: request to %s: %w", ErrNotSent, epr.Address, err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"`+action+`"`)
	if tok := container.AdmittedToken(ctx); tok != "" {
		// Made for a request the server serves: admitted by it at once if it is that
		// server (a self-call), which would otherwise wait on the budget it holds.
		req.Header.Set(container.AdmittedHeader, tok)
	}
	// A SOAP call is not redirected: Go would post the request again, signature and
	// all, to wherever the answer points — another host, or plain HTTP.
	hc := *c.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", epr.Address, err)
	}
	defer resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
		return nil, fmt.Errorf("%s answered HTTP %d, a redirect to %s: vws does not follow the redirects of SOAP calls, which would send the request where the answer says; "+
			"if that is the service's address, call it there", epr.Address, resp.StatusCode, loc)
	}
	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	tooLarge := func() error {
		return fmt.Errorf("%s answered with more than %d bytes, the most this caller reads of a SOAP answer: refused unparsed (is it a vws service, and a sound one?)",
			epr.Address, limit)
	}
	// An announced length over the bound is refused unread.
	if resp.ContentLength > limit {
		return nil, tooLarge()
	}
	raw, err := readAtMost(resp.Body, limit+1, resp.ContentLength)
	if err != nil {
		return nil, fmt.Errorf("read response from %s: %w", epr.Address, err)
	}
	if int64(len(raw)) > limit {
		return nil, tooLarge()
	}
	var env *soap.Envelope
	if c.Signer != nil && c.Verifier != nil {
		var res *wssec.Result
		env, res, err = c.Verifier.VerifyResponse(raw)
		switch {
		case err == nil:
			err = answersRequest(env, res, epr.Address, messageID(headers))
		case res != nil && !res.Signed && soap.IsFault(env.Payload):
			// A service signs no fault about a request it refused for its message
			// security (a signature for another address, a clock far off): not the
			// service's word, so no *FaultError, but the only account of why.
			err = fmt.Errorf("%w; unverified, it says: %s", err, faultError(resp.StatusCode, soap.ParseFault(env.Payload)))
		}
		if errors.Is(err, errdefs.ErrSecurity) {
			return nil, fmt.Errorf("the answer of %s: %w", epr.Address, err)
		}
	} else {
		env, err = soap.Parse(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("%s answered HTTP %d with %s, not a SOAP envelope: is this the address of a vws (WSRF) service?",
			epr.Address, resp.StatusCode, describeBody(resp.Header.Get("Content-Type"), raw))
	}
	if soap.IsFault(env.Payload) {
		return nil, faultError(resp.StatusCode, soap.ParseFault(env.Payload))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered HTTP %d", epr.Address, resp.StatusCode)
	}
	if env.Payload == nil {
		return nil, errors.New("response has an empty soap:Body")
	}
	return env.Payload, nil
}

// readAtMost reads up to n bytes of r, into a buffer that grows by doubling but never
// beyond n (io.ReadAll's would reach a multiple of it, in steps summing to several).
func readAtMost(r io.Reader, n, sizeHint int64) ([]byte, error) {
	c := int64(64 << 10)
	if sizeHint > 0 {
		c = sizeHint + 1 // +1: the read that finds the end
	}
	buf := make([]byte, 0, min(c, n))
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			buf = append(make([]byte, 0, min(2*int64(cap(buf)), n)), buf...)
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// answersRequest checks that a verified signed answer is this service's answer to
// this request: signed (wsa:RelatesTo with it) for the request's message id, and by a
// certificate that names the host the request went to — not by any certificate the
// CAs vouch for (a user's), nor a captured answer to another request.
func answersRequest(env *soap.Envelope, res *wssec.Result, address, sent string) error {
	// Every RelatesTo, not the last alone: a service echoes the reference parameters
	// of a request's ReplyTo as header blocks of its answer, so whoever sent a request
	// whose ReplyTo holds a wsa:RelatesTo naming this request gets the service's signed
	// answer to that other request relating to this one too.
	relatesTo := ""
	for _, h := range env.Headers {
		if !wsa.IsAddressingHeader(h) || h.Tag != "RelatesTo" {
			continue
		}
		relatesTo = strings.TrimSpace(h.Text())
		if sent != "" && relatesTo != sent {
			break
		}
	}
	if sent != "" && relatesTo != sent {
		return fmt.Errorf("%w: the signed answer relates to message %q, not to the request sent (%s): refused", errdefs.ErrSecurity, relatesTo, sent)
	}
	u, err := url.Parse(address)
	if err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrSecurity, err)
	}
	if cert := res.Identity.Certificate; !identity.NamesHost(cert, u.Hostname()) {
		names := "none"
		if cert != nil {
			names = strings.Join(identity.HostNames(cert), ", ")
		}
		return fmt.Errorf("%w: the answer is signed by %s, whose certificate does not name the service's host %q (it names %s): refused", errdefs.ErrSecurity, res.Identity.DN, u.Hostname(), names)
	}
	return nil
}

// messageID is the wsa:MessageID among a request's headers.
func messageID(headers []*etree.Element) string {
	for _, h := range headers {
		if h.Tag == "MessageID" {
			return h.Text()
		}
	}
	return ""
}

func faultError(status int, f *soap.Fault) *FaultError {
	fe := &FaultError{HTTPStatus: status, Fault: f}
	if len(f.Detail) > 0 {
		d := f.Detail[0]
		fe.Type = d.Tag
		for _, c := range d.ChildElements() {
			switch c.Tag {
			case "Description":
				if fe.Description != "" {
					fe.Description += "; "
				}
				fe.Description += strings.TrimSpace(c.Text())
			case "ErrorCode":
				fe.ErrorCode = strings.TrimSpace(c.Text())
			}
		}
	}
	return fe
}

// DialectOf returns the dialect an EPR's addressing version implies.
func DialectOf(epr *wsa.EPR) *dialect.Dialect { return dialect.ForWSA(epr.Version) }

// describeBody says in a few words on one line what a non-SOAP answer held: an HTML
// page, nothing, or the start of its text.
func describeBody(contentType string, raw []byte) string {
	text := strings.Join(strings.Fields(string(raw)), " ")
	lower := strings.ToLower(text)
	switch {
	case text == "":
		return "an empty body"
	case strings.HasPrefix(contentType, "text/html") || strings.HasPrefix(lower, "<!doctype html") || strings.HasPrefix(lower, "<html"):
		return "an HTML page"
	case len([]rune(text)) > 120:
		text = string([]rune(text)[:120]) + "…"
	}
	return fmt.Sprintf("%q", text)
}
