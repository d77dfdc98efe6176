package tlsutil

import (
	"crypto/sha256"
	"crypto/x509"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
)

// maxVerdicts bounds the cache of a Revalidator: one entry per distinct client chain
// in use, so only a site with more callers than this verifies some chains again.
const maxVerdicts = 4096

// Revalidator verifies the TLS client chain of every request again. Server's
// VerifyConnection verifies it once, at the handshake; without this a client that
// keeps its connection alive goes on being served after its proxy expires or its
// certificate is revoked. A chain's verdict is kept until its earliest expiry (or a
// CRL's next update) or until the trust reloads, so a request costs a hash of the
// chain and a map look-up.
type Revalidator struct {
	trust *pki.Trust
	now   func() time.Time
	log   *slog.Logger

	mu       sync.RWMutex
	verdicts map[[sha256.Size]byte]verdict
}

type verdict struct {
	gen   uint64
	until time.Time
}

// NewRevalidator checks chains against trust at now() (nil: time.Now), logging
// refusals to log (nil: slog.Default()).
func NewRevalidator(trust *pki.Trust, now func() time.Time, log *slog.Logger) *Revalidator {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Revalidator{trust: trust, now: now, log: log, verdicts: map[[sha256.Size]byte]verdict{}}
}

// Handler serves a request whose TLS client chain still verifies with next. Any other
// is answered 403 with why, on one line, and its connection closed, so that the
// client's next request makes a new handshake with whatever credential it has then.
// Requests without TLS or without a client certificate pass: policy decides about
// anonymous callers.
func (v *Revalidator) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if err := v.Check(r.TLS.PeerCertificates); err != nil {
			v.log.Warn("client certificate refused on an open connection", "caller", identity.FromChain(r.TLS.PeerCertificates).String(),
				"remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err)
			w.Header().Set("Connection", "close")
			// Nor is the body waited for: net/http would read what is left of it
			// before closing, with no deadline, for as long as the client sends none.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
			http.Error(w, "client certificate refused: "+err.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Check verifies chain (leaf first, as presented) now, or finds that an earlier
// verdict still holds.
func (v *Revalidator) Check(chain []*x509.Certificate) error {
	v.trust.MaybeReload() // fetch-crl's new CRLs count on open connections too
	now := v.now()
	gen := v.trust.Generation()
	h := sha256.New()
	for _, c := range chain {
		h.Write(c.Raw) // DER is self-delimiting: the concatenation is unambiguous
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	v.mu.RLock()
	d, ok := v.verdicts[key]
	v.mu.RUnlock()
	if ok && d.gen == gen && !now.After(d.until) {
		return nil
	}
	res, err := v.trust.Check(chain, now)
	v.mu.Lock()
	defer v.mu.Unlock()
	if err != nil {
		delete(v.verdicts, key)
		return err
	}
	if len(v.verdicts) >= maxVerdicts {
		for k, d := range v.verdicts {
			if d.gen != res.Generation || now.After(d.until) {
				delete(v.verdicts, k)
			}
		}
		if len(v.verdicts) >= maxVerdicts {
			clear(v.verdicts)
		}
	}
	v.verdicts[key] = verdict{gen: res.Generation, until: res.Until}
	return nil
}
