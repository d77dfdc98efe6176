package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"
)

// Networks decides which addresses Notify messages may be sent to. A consumer's
// address comes from whoever subscribed, so the server would otherwise post to any
// host its network reaches on their behalf (a cloud's metadata service, say).
type Networks struct {
	// Allow, if not empty, are the only networks messages go to.
	Allow []*net.IPNet
}

// Permits reports whether a message may go to ip: one of Allow when it is set, else
// any address but link-local (where metadata services answer), multicast and
// unspecified ones.
func (n Networks) Permits(ip net.IP) bool {
	if len(n.Allow) > 0 {
		for _, a := range n.Allow {
			if a.Contains(ip) {
				return true
			}
		}
		return false
	}
	return !(ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified())
}

// ParseNetworks reads CIDRs (a bare address is a /32 or /128).
func ParseNetworks(specs []string) (Networks, error) {
	var n Networks
	for _, s := range specs {
		if ip := net.ParseIP(s); ip != nil {
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			n.Allow = append(n.Allow, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
			continue
		}
		_, ipnet, err := net.ParseCIDR(s)
		if err != nil {
			return Networks{}, fmt.Errorf("%q is neither an address nor a CIDR network (e.g. 10.0.0.0/8)", s)
		}
		n.Allow = append(n.Allow, ipnet)
	}
	return n, nil
}

// errNetwork is a delivery to an address Networks refuses.
type errNetwork struct{ addr string }

func (e *errNetwork) Error() string {
	return "notifications may not be sent to " + e.addr + " (the site's --notify-networks)"
}

// deliveryClient sends Notify messages with the server's TLS credential, checking
// each address it connects to (after name resolution, so a name that resolves to a
// refused address is refused too).
func deliveryClient(tlsConfig *tls.Config, nets Networks) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !nets.Permits(ip) {
			return &errNetwork{addr: host}
		}
		return nil
	}}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		// A consumer's proxy settings are not the server's business; nor is following
		// its redirects, which could lead anywhere.
		Proxy: nil,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
