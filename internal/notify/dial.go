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
	if v4 := embeddedIPv4(ip); v4 != nil && !permittedByDefault(v4) {
		return false
	}
	return permittedByDefault(ip)
}

func permittedByDefault(ip net.IP) bool {
	for _, m := range metadataOutsideLinkLocal {
		if ip.Equal(m) {
			return false
		}
	}
	return !(ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified())
}

// metadataOutsideLinkLocal are the cloud metadata services that answer elsewhere than
// at a link-local address: AWS's over IPv6 (a unique-local address) and Alibaba
// Cloud's (in the shared address space).
var metadataOutsideLinkLocal = []net.IP{net.ParseIP("fd00:ec2::254"), net.ParseIP("100.100.100.200")}

// nat64 is the well-known NAT64 prefix (RFC 6052), 64:ff9b::/96.
var nat64 = &net.IPNet{IP: net.ParseIP("64:ff9b::"), Mask: net.CIDRMask(96, 128)}

// embeddedIPv4 is the IPv4 address an IPv6 address reaches by translation — NAT64's
// well-known prefix, or the deprecated IPv4-compatible form (::a.b.c.d) — or nil: a
// link-local IPv4 target (a cloud's metadata service) must not be reachable so.
func embeddedIPv4(ip net.IP) net.IP {
	if ip.To4() != nil || len(ip) != net.IPv6len {
		return nil
	}
	if nat64.Contains(ip) {
		return net.IP(ip[12:16])
	}
	for _, b := range ip[:12] {
		if b != 0 {
			return nil
		}
	}
	if v4 := net.IP(ip[12:16]); !v4.Equal(net.IPv4zero) && !(v4[0] == 0 && v4[1] == 0 && v4[2] == 0) {
		return v4 // ::a.b.c.d, not :: or ::1
	}
	return nil
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
