package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/notify"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/internal/wssec"
)

// subscribeTopics are the names `vws wsrf subscribe` takes for a workspace's topics.
var subscribeTopics = map[string]func(d *dialect.Dialect) wsa.QName{
	"state":       func(*dialect.Dialect) wsa.QName { return vwsns.Q(vwsns.Workspace, "state") },
	"deployment":  func(*dialect.Dialect) wsa.QName { return vwsns.Q(vwsns.Workspace, "deployment") },
	"termination": notify.Termination,
}

// endGrace is how long vws wsrf subscribe waits, after a workspace's end, for the
// changes just before it that other subscriptions carry.
const endGrace = 500 * time.Millisecond

// stoppedListening is how Ctrl-C ends vws wsrf subscribe.
var stoppedListening = &interruptedError{"stopped listening; the subscriptions were destroyed"}

func wsrfSubscribe() *cobra.Command {
	t := &targetOptions{}
	var listen, consumerURL string
	var lifetime, wait time.Duration
	var count int
	var raw bool
	cmd := &cobra.Command{
		Use:   "subscribe [key-value] [TOPIC...]",
		Short: "Subscribe to a workspace's changes and print each notification as it comes",
		Long: `Subscribe to a workspace's topics (WS-BaseNotification) and print each notification
as it arrives, until Ctrl-C, --count messages, --wait, or the workspace's end (always
listened for). TOPIC is state, deployment or termination (default: all three). vws
listens for the messages on --listen, renews its subscriptions while it runs, and
destroys them when it stops.

The service must reach the listener: by default vws listens on the address it reaches
the service from (so 127.0.0.1 for a local service); behind NAT give --consumer-url.
The listener speaks plain HTTP: an https:// --consumer-url needs a TLS-terminating
proxy in front of it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, rest, err := t.resolve(cmd, args)
			if err != nil {
				return err
			}
			d := client.DialectOf(epr)
			if len(rest) == 0 {
				rest = []string{"state", "deployment", "termination"}
			}
			var topics []wsa.QName
			for _, name := range rest {
				q, ok := subscribeTopics[strings.TrimPrefix(name, "vw:")]
				if !ok {
					return fmt.Errorf("unknown topic %q: the topics of a workspace are state, deployment and termination", name)
				}
				if !slices.Contains(topics, q(d)) {
					topics = append(topics, q(d))
				}
			}
			// Its end is always listened for: it is when the command stops.
			if end := notify.Termination(d); !slices.Contains(topics, end) {
				topics = append(topics, end)
			}
			if lifetime <= 0 {
				return fmt.Errorf("--lifetime %s: give a positive duration, e.g. 1h", lifetime)
			}
			if wait < 0 {
				return fmt.Errorf("--wait %s is negative: give how long to listen, e.g. 10m (or leave it out to listen until Ctrl-C)", wait)
			}
			if count < 0 {
				return fmt.Errorf("--count %d is negative: give how many notifications to wait for (or leave it out for no limit)", count)
			}
			return runSubscribe(cmd, epr, d, topics, subscribeOptions{listen: listen, consumerURL: consumerURL,
				lifetime: lifetime, wait: wait, count: count, raw: raw})
		},
	}
	t.register(cmd)
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "HOST:PORT to take notifications on (default: the local address that reaches the service, any free port)")
	f.StringVar(&consumerURL, "consumer-url", "", "the URL the service sends notifications to (default: http://<--listen>/; with no host in --listen, the local address that reaches the service)")
	f.DurationVar(&lifetime, "lifetime", time.Hour, "how long the subscriptions outlive a vws that cannot destroy them (killed, say); while it runs, vws renews them")
	f.DurationVar(&wait, "wait", 0, "stop after this long (default: until Ctrl-C, --count or the workspace's end)")
	f.IntVar(&count, "count", 0, "stop after this many notifications (default: no limit)")
	f.BoolVar(&raw, "xml", false, "print each NotificationMessage as XML")
	return cmd
}

type subscribeOptions struct {
	listen, consumerURL string
	lifetime, wait      time.Duration
	count               int
	raw                 bool
}

func runSubscribe(cmd *cobra.Command, ws *wsa.EPR, d *dialect.Dialect, topics []wsa.QName, o subscribeOptions) error {
	ctx := cmd.Context()
	if o.listen == "" {
		o.listen = net.JoinHostPort(localAddressFor(ws.Address), "0")
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen for notifications on %s: %w (give --listen HOST:PORT)", o.listen, err)
	}
	if o.consumerURL == "" {
		o.consumerURL = "http://" + advertisedAddress(ln.Addr(), ws.Address) + "/"
	} else if u, err := url.Parse(o.consumerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ln.Close()
		return fmt.Errorf("--consumer-url %q is not an http:// or https:// URL", o.consumerURL)
	} else if u.Scheme == "https" {
		// Right behind a TLS-terminating proxy that forwards to the listener; without
		// one every delivery fails, which the user would learn only when the service
		// ends the subscriptions.
		fmt.Fprintf(cmd.ErrOrStderr(), "vws: note: the listener on %s speaks plain HTTP: --consumer-url %s reaches it only through a TLS-terminating proxy that forwards to it; without one, give an http:// URL\n",
			ln.Addr(), o.consumerURL)
	}

	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		ln.Close()
		return err
	}
	p := newListenPrinter(cmd.OutOrStdout(), o.raw, o.count, endGrace)
	done := p.done
	consumer := &notify.Consumer{Token: hex.EncodeToString(token), Deliver: p.deliver}
	if consumer.Verifier, consumer.Signer, err = notifyTrust(ws.Address); err != nil {
		ln.Close()
		return err
	}
	srv := listenerServer(consumer)
	go srv.Serve(ln)
	defer srv.Close()

	sc := soapClient()
	var subs []*wsa.EPR
	defer func() {
		// Ended here, so the service stops sending to a listener that is gone.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range subs {
			if err := sc.Destroy(cctx, s); err != nil && !isResourceUnknown(err) {
				fmt.Fprintf(cmd.ErrOrStderr(), "vws: could not destroy subscription %s (it ends by itself within --lifetime): %v\n", subscriptionKeyOf(s), err)
			}
		}
	}()
	ref := consumer.Reference(d.WSA, o.consumerURL)
	until := time.Now().Add(o.lifetime)
	for _, q := range topics {
		body := subscribeBody(d, ref, q, until)
		resp, err := sc.Invoke(ctx, ws, "Subscribe", body)
		if err != nil {
			return err
		}
		sub := resp.FindElement("./SubscriptionReference")
		if sub == nil {
			return fmt.Errorf("the SubscribeResponse holds no SubscriptionReference")
		}
		s, err := wsa.ParseEPR(sub)
		if err != nil {
			return fmt.Errorf("SubscriptionReference: %w", err)
		}
		subs = append(subs, s)
		// The service may grant less than --lifetime (its maximum): renewing at half
		// of what was asked would come after the subscription ended.
		if granted, ok := grantedLifetime(ctx, sc, d, s, resp); ok && granted < o.lifetime-time.Second {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: the service grants subscriptions %s at most, not the %s of --lifetime; vws renews them every %s\n",
				granted.Round(time.Second), o.lifetime, max(granted/2, time.Second).Round(time.Second))
			o.lifetime = granted
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "vws: listening on %s for %s (Ctrl-C to stop)\n", o.consumerURL, topicNames(d, topics))

	var timeout <-chan time.Time
	if o.wait > 0 {
		timeout = time.After(o.wait)
	}
	// The subscriptions last --lifetime past the last renewal: they outlive a vws killed
	// without destroying them by that much only, and a listener running for days keeps
	// them by renewing them at half their lifetime.
	renew := time.NewTicker(max(o.lifetime/2, time.Second))
	defer renew.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-timeout:
			return nil
		case <-ctx.Done():
			return stoppedListening
		case <-renew.C:
			at := time.Now().Add(o.lifetime)
			for _, s := range subs {
				_, _, err := sc.SetTerminationTime(ctx, s, &at)
				switch {
				case err == nil:
				case ctx.Err() != nil:
					return stoppedListening
				case isResourceUnknown(err):
					if !p.hasEnded() {
						return fmt.Errorf("the service ended subscription %s: its messages could not be delivered to %s (is that address reachable from the service? give --consumer-url)",
							subscriptionKeyOf(s), o.consumerURL)
					}
				default:
					fmt.Fprintf(cmd.ErrOrStderr(), "vws: could not renew subscription %s (trying again in %s): %v\n", subscriptionKeyOf(s), max(o.lifetime/2, time.Second), err)
				}
			}
		}
	}
}

// listenPrinter prints the notifications vws wsrf subscribe receives and says when
// it is done: after count of them, or once the workspace's end is printed.
type listenPrinter struct {
	out   io.Writer
	raw   bool
	count int
	grace time.Duration
	done  chan struct{}

	mu   sync.Mutex
	seen int
	// ended: the workspace's end came; closed: it was printed, and nothing more is.
	ended, closed bool
}

func newListenPrinter(out io.Writer, raw bool, count int, grace time.Duration) *listenPrinter {
	return &listenPrinter{out: out, raw: raw, count: count, grace: grace, done: make(chan struct{})}
}

func (p *listenPrinter) deliver(n notify.Notification) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || (p.count > 0 && p.seen >= p.count) {
		return
	}
	if n.Terminated {
		if p.ended {
			return
		}
		// Each topic is a subscription of its own, with its own queue: changes made
		// just before the end may still be on their way. They are printed first.
		p.ended = true
		time.AfterFunc(p.grace, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.closed {
				return // --count was reached meanwhile
			}
			p.closed = true
			printNotification(p.out, n, p.raw)
			close(p.done)
		})
		return
	}
	p.seen++
	printNotification(p.out, n, p.raw)
	if p.count > 0 && p.seen == p.count {
		p.closed = true
		close(p.done)
	}
}

func (p *listenPrinter) hasEnded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ended
}

func subscribeBody(d *dialect.Dialect, consumer *wsa.EPR, topic wsa.QName, until time.Time) *etree.Element {
	body := etree.NewElement("wsnt:Subscribe")
	body.CreateAttr("xmlns:wsnt", d.BN)
	consumer.ChildElement(body, "wsnt:ConsumerReference", "wsa")
	parent := body
	if d == dialect.WSRF12 {
		parent = body.CreateElement("wsnt:Filter")
	}
	te := parent.CreateElement("wsnt:TopicExpression")
	simple := "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple"
	if d == dialect.GT4 {
		simple = "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple"
	}
	te.CreateAttr("Dialect", simple)
	te.CreateAttr("xmlns:t", topic.Space)
	te.SetText("t:" + topic.Local)
	body.CreateElement("wsnt:InitialTerminationTime").SetText(wsrf.FormatTime(until))
	return body
}

func printNotification(w io.Writer, n notify.Notification, raw bool) {
	if raw {
		_ = printElements(w, []*etree.Element{n.Message})
		return
	}
	at := time.Now().UTC().Format("2006-01-02T15:04:05Z")
	ws := ""
	if n.Producer != nil {
		if k := n.Producer.Reference(vwsns.Workspace, "WorkspaceKey"); k != nil {
			ws = strings.TrimSpace(k.Text()) + " "
		}
	}
	if n.Terminated {
		fmt.Fprintf(w, "%s %sended: %s\n", at, ws, n.Reason)
		return
	}
	fmt.Fprintf(w, "%s %s%s: %s -> %s\n", at, ws, n.Topic.Local, values(n.Old), values(n.New))
}

func values(els []*etree.Element) string {
	if len(els) == 0 {
		return "(none)"
	}
	parts := make([]string, len(els))
	for i, el := range els {
		parts[i] = strings.TrimSpace(el.Text())
	}
	return strings.Join(parts, ",")
}

// topicNames says qs as the command line names them (state, deployment, termination).
func topicNames(d *dialect.Dialect, qs []wsa.QName) string {
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Local
		for name, topic := range subscribeTopics {
			if topic(d) == q {
				names[i] = name
			}
		}
	}
	return strings.Join(names, ", ")
}

// grantedLifetime is how long the service granted subscription s: from its
// SubscribeResponse (WS-BaseNotification 1.3), or else its resource properties (GT4).
// listenerServer serves the notification consumer, which anyone reaching the host can
// reach: the consumer bounds a body's time, IdleTimeout a kept-alive connection's
// (net/http keeps an idle one for ever without it or ReadTimeout).
func listenerServer(consumer http.Handler) *http.Server {
	return &http.Server{Handler: consumer, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
}

func grantedLifetime(ctx context.Context, sc *client.Client, d *dialect.Dialect, s *wsa.EPR, resp *etree.Element) (time.Duration, bool) {
	current, term := "", ""
	if c, t := resp.FindElement("./CurrentTime"), resp.FindElement("./TerminationTime"); c != nil && t != nil {
		current, term = c.Text(), t.Text()
	} else {
		els, err := sc.GetMultipleResourceProperties(ctx, s, []wsa.QName{{Space: d.RL, Local: "CurrentTime"}, {Space: d.RL, Local: "TerminationTime"}})
		if err != nil {
			return 0, false
		}
		for _, el := range els {
			switch el.Tag {
			case "CurrentTime":
				current = el.Text()
			case "TerminationTime":
				term = el.Text()
			}
		}
	}
	now, err1 := wsrf.ParseDateTime(strings.TrimSpace(current))
	until, err2 := wsrf.ParseDateTime(strings.TrimSpace(term))
	if err1 != nil || err2 != nil || !until.After(now) {
		return 0, false
	}
	return until.Sub(now), true
}

func subscriptionKeyOf(e *wsa.EPR) string {
	if k := e.Reference(vwsns.Notification, "SubscriptionKey"); k != nil {
		return strings.TrimSpace(k.Text())
	}
	return e.Address
}

func isResourceUnknown(err error) bool {
	var fe *client.FaultError
	return errors.As(err, &fe) && fe.Type == "ResourceUnknownFault"
}

// notifyTrust is how the listener of a service reached over https tells the service's
// Notify messages from anyone else's: they must be signed by a host certificate the
// site's CAs (those that vouch for the service's TLS certificate) vouch for. Over plain
// HTTP there is nothing to check against (nil).
func notifyTrust(service string) (*wssec.Verifier, func(identity.Identity) error, error) {
	if !strings.HasPrefix(strings.ToLower(service), "https://") {
		return nil, nil, nil
	}
	cr, err := client.LoadCredentials(tlsFlags.cert, tlsFlags.key, tlsFlags.ca)
	if err != nil {
		return nil, nil, err
	}
	if cr.CAPath == "" {
		return nil, nil, errors.New("no trusted CAs to check the service's signed notifications against: pass --ca CADIR (or set X509_CERT_DIR)")
	}
	trust, err := pki.LoadTrust(cr.CAPath)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(service)
	if err != nil || u.Hostname() == "" {
		return nil, nil, fmt.Errorf("the service address %q names no host to check its signed notifications against", service)
	}
	verifier := wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) { return trust.Verify(chain, time.Now()) })
	host := func(id identity.Identity) error {
		if !strings.Contains(id.DN, "/CN=host/") {
			return fmt.Errorf("the Notify is signed by %s, not by a service's host certificate (…/CN=host/…)", id.DN)
		}
		// Every host of the site has a certificate of the same CAs, and the listener key
		// crosses the network in the clear: only the host the subscriptions were made
		// with, whose name TLS checked, speaks for them. It is named as the client
		// holds signed answers to (a SAN, or a Globus-style CN=host/NAME).
		if !identity.NamesHost(id.Certificate, u.Hostname()) {
			return fmt.Errorf("the Notify is signed by %s, whose certificate is not for %s, the service the subscriptions were made with: refused", id.DN, u.Hostname())
		}
		return nil
	}
	return verifier, host, nil
}

// advertisedAddress is where the service reaches a listener at addr: addr itself, or,
// listening on every interface (--listen :PORT), the local address on the route to
// the service, on that port — the service sends nothing to 0.0.0.0 or ::.
func advertisedAddress(addr net.Addr, service string) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort(localAddressFor(service), strconv.Itoa(tcp.Port))
}

// localAddressFor is this host's address on the route to the service at addr (no
// packet is sent): the service sends notifications back to it.
func localAddressFor(addr string) string {
	u, err := url.Parse(addr)
	if err != nil || u.Hostname() == "" {
		return "127.0.0.1"
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}
