package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki/certext"
)

// Kinds of verification failure, for errors.Is; the error's text says what exactly
// was wrong and what to do.
var (
	ErrUntrusted = errors.New("certificate not trusted")
	ErrExpired   = errors.New("certificate expired or not yet valid")
	ErrRevoked   = errors.New("certificate revoked")
	ErrStaleCRL  = errors.New("CRL stale or invalid")
	ErrProxy     = errors.New("invalid proxy certificate")
)

// VerifyError is a refused chain.
type VerifyError struct {
	Kind error
	Msg  string
}

func (e *VerifyError) Error() string { return e.Msg }
func (e *VerifyError) Unwrap() error { return e.Kind }

func refuse(kind error, format string, args ...any) error {
	return &VerifyError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Trust is a set of trusted CAs and their CRLs, read from a directory in the
// /etc/grid-security/certificates layout (or one PEM file of CAs). It is safe for
// concurrent use; Reload and MaybeReload swap in a new set atomically.
type Trust struct {
	path  string
	state atomic.Pointer[trustState]

	reloadMu  sync.Mutex
	lastCheck atomic.Int64 // unix nanoseconds of the last MaybeReload look
	gens      atomic.Uint64
}

type trustState struct {
	roots *x509.CertPool
	cas   []*x509.Certificate
	// crls holds, per issuing CA (by its DER certificate), the newest CRL whose
	// signature that CA verifies — every certificate of a CA re-issued with the same
	// key gets its CRL.
	crls map[string]*x509.RevocationList
	// others are the CRLs no CA of the directory verifies: an intermediate's whose
	// certificate the caller sends. They are checked against the path's issuer.
	others []*x509.RevocationList
	// policies are the subjects each CA may sign, by the CA's one-line DN, from the
	// directory's Globus signing_policy files; a CA without one may sign any.
	policies map[string][]*regexp.Regexp
	// policyFiles are the <hash>.signing_policy files, by that subject hash: a CA
	// with one whose access_id_CA lines all spell another name signs nothing.
	policyFiles map[string]string
	stamp       string // names and fileStamps of the files read
	gen         uint64 // see Generation
}

// LoadTrust reads the CA certificates (*.0…*.9, *.pem, *.crt) and CRLs (*.r0…*.r9,
// *.crl, *.crl.pem, and CRL blocks of any of those) of dir, or the CAs of a single
// PEM file. A CRL that no trusted CA signed is ignored with a warning. A CA without
// a CRL is accepted as Globus does by default; one whose CRL is past its nextUpdate
// is not.
func LoadTrust(path string) (*Trust, error) {
	t := &Trust{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Path is where the trust was read from.
func (t *Trust) Path() string { return t.path }

// Roots returns the trusted CAs as a pool (for verifying servers with crypto/tls).
func (t *Trust) Roots() *x509.CertPool { return t.state.Load().roots }

// Generation changes whenever Reload swaps in a newly read set of CAs and CRLs: a
// verdict (Check) of an earlier generation may no longer hold.
func (t *Trust) Generation() uint64 { return t.state.Load().gen }

// Reload re-reads the directory. On error the previous set stays in force.
func (t *Trust) Reload() error {
	t.reloadMu.Lock()
	defer t.reloadMu.Unlock()
	files, stamp, err := trustFiles(t.path)
	if err != nil {
		return err
	}
	st, err := loadTrustState(t.path, files)
	if err != nil {
		return err
	}
	st.stamp = stamp
	st.gen = t.gens.Add(1)
	t.state.Store(st)
	t.lastCheck.Store(time.Now().UnixNano())
	return nil
}

// MaybeReload re-reads the directory when a file was added, removed or changed
// (fileStamp) — fetch-crl refreshes CRLs on real sites — looking at most once a
// second, so it is cheap to call on every handshake. A failed reload is logged and
// the previous set kept.
func (t *Trust) MaybeReload() {
	now := time.Now().UnixNano()
	last := t.lastCheck.Load()
	if now-last < int64(time.Second) || !t.lastCheck.CompareAndSwap(last, now) {
		return
	}
	_, stamp, err := trustFiles(t.path)
	if err != nil {
		slog.Warn("trusted CAs: cannot look for changes", "path", t.path, "err", err)
		return
	}
	if stamp == t.state.Load().stamp {
		return
	}
	if err := t.Reload(); err != nil {
		slog.Warn("trusted CAs: reload failed, keeping the previous set", "path", t.path, "err", err)
		return
	}
	slog.Info("trusted CAs reloaded", "path", t.path)
}

// trustFiles lists the files LoadTrust reads and a stamp of their names and
// fileStamps.
func trustFiles(path string) ([]string, string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("trusted CAs: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, path + " " + fileStamp(info), nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, "", fmt.Errorf("trusted CAs: %w", err)
	}
	var files []string
	var stamp strings.Builder
	for _, e := range entries {
		n := e.Name()
		if !trustFileName(n) {
			continue
		}
		full := filepath.Join(path, n)
		fi, err := os.Stat(full) // follows the symlinks CA packages install
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		files = append(files, full)
		fmt.Fprintf(&stamp, "%s %s\n", n, fileStamp(fi))
	}
	return files, stamp.String(), nil
}

// fileStamp tells one version of a file from another. Size and mtime alone miss a
// CRL replaced by one of the same size (one revoked serial for another, or a refresh
// with new dates) within the file system's timestamp granularity (a second on ext3
// and NFSv3, a jiffy on ext4): the inode (a file replaced by rename, as fetch-crl and
// WriteCRL do, is another one) and the change time (set by the kernel on every
// write) tell those apart, as policy.Engine's stamps do.
func fileStamp(fi os.FileInfo) string {
	s := fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		s += fmt.Sprintf(" %d %d.%d", sys.Ino, sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return s
}

func trustFileName(n string) bool {
	if strings.HasPrefix(n, ".") {
		return false // our own temporary files, editors' backups
	}
	ext := filepath.Ext(n)
	switch {
	case ext == ".signing_policy":
		return true
	case ext == ".pem" || ext == ".crt" || ext == ".crl":
		return true
	case len(ext) == 2 && ext[1] >= '0' && ext[1] <= '9':
		return true
	case len(ext) == 3 && ext[1] == 'r' && ext[2] >= '0' && ext[2] <= '9':
		return true
	}
	return false
}

func loadTrustState(path string, files []string) (*trustState, error) {
	st := &trustState{roots: x509.NewCertPool(), crls: map[string]*x509.RevocationList{}, policyFiles: map[string]string{}}
	var crls []*x509.RevocationList
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("trusted CAs: %w", err)
		}
		if strings.HasSuffix(f, ".signing_policy") {
			if err := st.readSigningPolicy(data); err != nil {
				return nil, fmt.Errorf("trusted CAs: %s: %w", f, err)
			}
			if hash := strings.TrimSuffix(filepath.Base(f), ".signing_policy"); subjectHashRE.MatchString(hash) {
				st.policyFiles[hash] = f
			}
			continue
		}
		found := false
		for rest := data; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			switch b.Type {
			case "CERTIFICATE", "TRUSTED CERTIFICATE":
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("trusted CA in %s: %w", f, err)
				}
				st.roots.AddCert(c)
				st.cas = append(st.cas, c)
				found = true
			case "X509 CRL":
				crl, err := x509.ParseRevocationList(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("CRL in %s: %w", f, err)
				}
				crls = append(crls, crl)
				found = true
			}
		}
		if !found && strings.HasSuffix(f, ".crl") { // fetch-crl can leave DER
			crl, err := x509.ParseRevocationList(data)
			if err != nil {
				return nil, fmt.Errorf("CRL in %s: %w", f, err)
			}
			crls = append(crls, crl)
		}
	}
	if len(st.cas) == 0 {
		return nil, fmt.Errorf("no CA certificates found in %s", path)
	}
	for _, crl := range crls {
		signed := false
		for _, ca := range st.cas {
			if !bytes.Equal(ca.RawSubject, crl.RawIssuer) || crl.CheckSignatureFrom(ca) != nil {
				continue
			}
			signed = true
			key := string(ca.Raw)
			if old := st.crls[key]; old == nil || crl.ThisUpdate.After(old.ThisUpdate) {
				st.crls[key] = crl
			}
		}
		if !signed {
			st.others = append(st.others, crl)
		}
	}
	return st, nil
}

// Verify checks a presented chain at time now and says who it identifies. chain[0]
// is the leaf (possibly a proxy), followed by its issuers as presented. The first
// certificate that is not a proxy is the end-entity certificate: it must chain to a
// trusted CA, neither it nor a CA on its path revoked by a current CRL; the proxies
// above it must each be a valid RFC 3820 (or legacy Globus) proxy of the next.
func (t *Trust) Verify(chain []*x509.Certificate, now time.Time) (identity.Identity, error) {
	v, err := t.Check(chain, now)
	return v.Identity, err
}

// Verdict is what Check found: who a chain identifies, and for how long that holds.
type Verdict struct {
	Identity identity.Identity
	// Generation is that of the CAs and CRLs the chain was checked against: after a
	// reload (a new CRL) it must be checked again.
	Generation uint64
	// Until is the last instant the verdict holds without a reload: the earliest
	// NotAfter of the proxies, the end-entity certificate and the CAs of its path,
	// or an earlier nextUpdate of a CRL it was checked against.
	Until time.Time
}

// Check is Verify, also saying how long its verdict holds, so that a caller may keep
// it rather than verify the same chain again (a TLS connection's, on each request).
func (t *Trust) Check(chain []*x509.Certificate, now time.Time) (Verdict, error) {
	st := t.state.Load()
	if len(chain) == 0 {
		return Verdict{}, refuse(ErrUntrusted, "no certificate presented")
	}
	eeIdx := certext.EndEntity(chain)
	if eeIdx < 0 {
		return Verdict{}, refuse(ErrProxy, "the chain holds only proxies (%s): send the certificate they descend from too (a proxy file holds the whole chain)", DN(chain[len(chain)-1]))
	}
	ee := chain[eeIdx]
	until, err := t.verifyEndEntity(st, ee, chain[eeIdx+1:], now)
	if err != nil {
		return Verdict{}, err
	}
	// OneLineDN escapes such a value, but a CA-signed name made to read as another
	// (".../CN=mallory/CN=host/x" passing for a host) is an attack, not a user.
	if attr, val, found := identity.AmbiguousValue(ee.Subject); found {
		return Verdict{}, refuse(ErrUntrusted, "certificate %s refused: its %s %q holds \"/\" followed by \"attribute=\", so its one-line DN reads as another name; ask its CA for a certificate without that", DN(ee), attr, val)
	}
	limited, err := verifyProxies(chain[:eeIdx+1], now)
	if err != nil {
		return Verdict{}, err
	}
	for _, p := range chain[:eeIdx] {
		until = earlier(until, p.NotAfter)
	}
	// Attributes come from the end-entity certificate only: its trusted CA asserted
	// them. A proxy's extensions are written by the user himself and never count.
	id := identity.Identity{DN: DN(ee), Certificate: ee, Proxy: eeIdx > 0, Limited: limited,
		Attributes: certext.VOAttributes(ee)}
	return Verdict{Identity: id, Generation: st.gen, Until: until}, nil
}

// earlier returns the earlier of a and b, a zero time counting as none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// verifyEndEntity verifies ee and says until when that holds (see Verdict.Until).
func (t *Trust) verifyEndEntity(st *trustState, ee *x509.Certificate, rest []*x509.Certificate, now time.Time) (time.Time, error) {
	// A caller authenticates as a TLS client (or signs as one): a certificate its CA
	// limited to other uses (e-mail, code signing, a server only) does not.
	return t.verifyFor(st, ee, rest, now, x509.ExtKeyUsageClientAuth)
}

// CheckServer verifies a server's chain (leaf first) as a client must beside the
// host name: against the CAs, for server authentication, their CRLs and signing
// policies — crypto/tls alone consults no CRL, and a revoked host certificate would
// still pass for the service.
func (t *Trust) CheckServer(chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return refuse(ErrUntrusted, "the server presented no certificate")
	}
	_, err := t.verifyFor(t.state.Load(), chain[0], chain[1:], now, x509.ExtKeyUsageServerAuth)
	return err
}

func (t *Trust) verifyFor(st *trustState, ee *x509.Certificate, rest []*x509.Certificate, now time.Time, usage x509.ExtKeyUsage) (time.Time, error) {
	dn := DN(ee)
	if err := checkValidity("certificate", ee, now, "renew it"); err != nil {
		return time.Time{}, err
	}
	if ee.BasicConstraintsValid && ee.IsCA {
		return time.Time{}, refuse(ErrUntrusted, "certificate %s is a CA certificate; a caller authenticates with a user or host certificate", dn)
	}
	if ee.KeyUsage != 0 && ee.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return time.Time{}, refuse(ErrUntrusted, "certificate %s does not allow digital signatures (its key usage lacks digitalSignature), so it cannot authenticate or sign proxies", dn)
	}
	inter := x509.NewCertPool()
	for _, c := range rest {
		inter.AddCert(c)
	}
	paths, err := ee.Verify(x509.VerifyOptions{Roots: st.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return time.Time{}, refuse(ErrUntrusted, "certificate %s is issued by %s, which this site does not trust; add its CA to %s", dn, identity.OneLineDN(ee.Issuer), t.path)
		}
		var ce x509.CertificateInvalidError
		if errors.As(err, &ce) && ce.Reason == x509.Expired {
			return time.Time{}, refuse(ErrExpired, "a CA certificate on the path of %s is expired or not yet valid (%v); update %s", dn, err, t.path)
		}
		return time.Time{}, refuse(ErrUntrusted, "certificate %s does not verify: %v", dn, err)
	}
	// Every verified path must pass: one through a CA certificate re-issued with the
	// same key, or ending at an intermediate the directory also holds, must not skip
	// a CRL another path would meet. Each path goes on up to a self-signed root.
	var until time.Time
	for _, p := range paths {
		p = towardRoot(st, p)
		if err := checkSigningPolicies(st, p); err != nil {
			return time.Time{}, err
		}
		pu, err := checkRevocation(st, p, now)
		if err != nil {
			return time.Time{}, err
		}
		until = earlier(until, pu)
		for _, c := range p {
			until = earlier(until, c.NotAfter)
		}
	}
	return until, nil
}

// towardRoot extends a verified path that ends at a CA of the directory which is not
// self-signed (an intermediate installed beside its root) with its issuers from the
// directory, up to a self-signed one, so that their CRLs are consulted too.
func towardRoot(st *trustState, path []*x509.Certificate) []*x509.Certificate {
	for range 8 {
		top := path[len(path)-1]
		if bytes.Equal(top.RawSubject, top.RawIssuer) && top.CheckSignatureFrom(top) == nil {
			return path
		}
		var issuer *x509.Certificate
		for _, ca := range st.cas {
			if bytes.Equal(ca.RawSubject, top.RawIssuer) && !slices.Contains(path, ca) && top.CheckSignatureFrom(ca) == nil {
				issuer = ca
				break
			}
		}
		if issuer == nil {
			return path
		}
		path = append(slices.Clone(path), issuer)
	}
	return path
}

// checkRevocation checks every certificate of a verified path (leaf first) but the
// anchor against its issuer's CRL, when the site has one; a CRL past its nextUpdate
// is refused, since grid sites fetch them regularly and an old one may miss
// revocations. It returns the earliest nextUpdate of the CRLs it consulted (zero:
// none), when the path must be checked again.
func checkRevocation(st *trustState, path []*x509.Certificate, now time.Time) (time.Time, error) {
	var until time.Time
	for i := 0; i+1 < len(path); i++ {
		c, issuer := path[i], path[i+1]
		crl := st.crls[string(issuer.Raw)]
		if crl == nil {
			crl = otherCRL(st, issuer)
		}
		if crl == nil {
			continue
		}
		if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
			return time.Time{}, refuse(ErrStaleCRL, "the CRL of %s is stale: its next update was due at %s; refresh it (fetch-crl, or vws pki revoke --ca-dir for a vws test CA)",
				DN(issuer), crl.NextUpdate.UTC().Format(time.RFC3339))
		}
		for _, r := range crl.RevokedCertificateEntries {
			if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return time.Time{}, refuse(ErrRevoked, "certificate %s (serial %s) is revoked by the CRL of %s since %s",
					DN(c), c.SerialNumber, DN(issuer), r.RevocationTime.UTC().Format(time.RFC3339))
			}
		}
		until = earlier(until, crl.NextUpdate)
	}
	return until, nil
}

// A Globus signing_policy file names, for a CA, the subjects it may sign:
//
//	access_id_CA   X509   '/C=US/O=Globus/CN=Globus Certification Authority'
//	pos_rights     globus CA:sign
//	cond_subjects  globus '"/C=us/O=Globus/*"  "/C=US/O=Globus/*"'
//
// A "*" stands for any characters. IGTF bundles ship one per CA: without them every
// CA of a bundle could issue any name — another CA's users', or a host's. A value is
// quoted with ' or ", or is one word (a CA name without spaces may be written bare).
var subjectHashRE = regexp.MustCompile(`^[0-9a-f]{8}$`)

// readSigningPolicy adds a signing_policy file's CAs and the subjects they may sign.
// A CA named without cond_subjects may sign nothing: the file is refused rather
// than read as allowing more than it says.
func (st *trustState) readSigningPolicy(data []byte) error {
	if st.policies == nil {
		st.policies = map[string][]*regexp.Regexp{}
	}
	var ca string
	entry := false // after an access_id_ line; ca is "" when that is not a CA's
	for _, line := range strings.Split(string(data), "\n") {
		w := policyWords(line)
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		switch {
		case strings.HasPrefix(w[0], "access_id_"):
			// Each access identity starts an entry: the conditions of one vws does not
			// read as a CA's bind no CA, least of all the entry before it.
			entry, ca = true, ""
			if w[0] == "access_id_CA" && len(w) >= 3 && w[1] == "X509" {
				ca = w[2]
				if _, ok := st.policies[ca]; !ok {
					st.policies[ca] = []*regexp.Regexp{}
				}
			}
		case w[0] == "cond_subjects" && len(w) >= 3 && w[1] == "globus":
			if !entry {
				return errors.New("cond_subjects before any access_id_CA")
			}
			if ca == "" {
				continue
			}
			for _, q := range policyWords(w[2]) {
				glob := regexp.QuoteMeta(q)
				glob = strings.ReplaceAll(glob, `\*`, ".*")
				st.policies[ca] = append(st.policies[ca], regexp.MustCompile("^"+glob+"$"))
			}
		}
	}
	return nil
}

// policyWords splits a signing_policy line into its words: runs without blanks, or
// text quoted with ' or " (to the closing quote, or the end of the line).
func policyWords(line string) []string {
	var words []string
	for {
		line = strings.TrimLeft(line, " \t\r")
		if line == "" {
			return words
		}
		var w string
		if q := line[0]; q == '\'' || q == '"' {
			w, line, _ = strings.Cut(line[1:], string(q))
		} else if i := strings.IndexAny(line, " \t\r"); i >= 0 {
			w, line = line[:i], line[i:]
		} else {
			w, line = line, ""
		}
		words = append(words, w)
	}
}

// checkSigningPolicies refuses a path on which a CA signed a subject its signing
// policy does not allow.
func checkSigningPolicies(st *trustState, path []*x509.Certificate) error {
	for i := 0; i+1 < len(path); i++ {
		issuer := DN(path[i+1])
		allowed, ok := st.policies[issuer]
		if !ok {
			// Globus and ARC find a CA's policy by its subject hash: the file is the
			// CA's even when its access_id_CA spells the name otherwise ("/Email=" for
			// "/emailAddress=", another quoting), and it then allows nothing. Ignoring
			// it would let the CA sign any name.
			if file := st.policyFiles[subjectHashOf(path[i+1])]; file != "" {
				return refuse(ErrUntrusted, "certificate %s is issued by %s, whose signing policy %s names no access_id_CA %q, so it may sign nothing here: refused; correct the file's access_id_CA line", DN(path[i]), issuer, file, issuer)
			}
			continue
		}
		subject := DN(path[i])
		if !slices.ContainsFunc(allowed, func(re *regexp.Regexp) bool { return re.MatchString(subject) }) {
			return refuse(ErrUntrusted, "certificate %s is issued by %s outside its signing policy (it signs only %s): refused", subject, issuer, policyList(allowed))
		}
	}
	return nil
}

// subjectHashOf is c's subject hash, "" when its name does not parse.
func subjectHashOf(c *x509.Certificate) string {
	h, err := SubjectHash(c.RawSubject)
	if err != nil {
		return ""
	}
	return h
}

func policyList(res []*regexp.Regexp) string {
	if len(res) == 0 {
		return "nothing"
	}
	var out []string
	for _, re := range res {
		p := strings.TrimSuffix(strings.TrimPrefix(re.String(), "^"), "$")
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(p, ".*", "*"), `\`, ""))
	}
	return strings.Join(out, ", ")
}

// otherCRL is the newest CRL of those no directory CA verifies that issuer verifies:
// an intermediate's, whose certificate the caller sent.
func otherCRL(st *trustState, issuer *x509.Certificate) *x509.RevocationList {
	var newest *x509.RevocationList
	for _, crl := range st.others {
		if bytes.Equal(crl.RawIssuer, issuer.RawSubject) && crl.CheckSignatureFrom(issuer) == nil &&
			(newest == nil || crl.ThisUpdate.After(newest.ThisUpdate)) {
			newest = crl
		}
	}
	return newest
}

// verifyProxies checks the proxies of chain (leaf first; the last element is the
// end-entity certificate) from the end-entity down, and says whether one is limited.
func verifyProxies(chain []*x509.Certificate, now time.Time) (limited bool, err error) {
	remaining := -1 // proxies still allowed below; -1: unconstrained
	for i := len(chain) - 2; i >= 0; i-- {
		p, issuer := chain[i], chain[i+1]
		dn := DN(p)
		info := certext.Classify(p)
		if info.Err != nil {
			return false, refuse(ErrProxy, "proxy %s has a malformed ProxyCertInfo: %v", dn, info.Err)
		}
		if !bytes.Equal(p.RawIssuer, issuer.RawSubject) {
			return false, refuse(ErrProxy, "proxy %s names %s as its issuer but is followed by %s: send the chain in order", dn, identity.OneLineDN(p.Issuer), DN(issuer))
		}
		if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return false, refuse(ErrProxy, "%s may not sign proxies: its key usage lacks digitalSignature", DN(issuer))
		}
		// CheckSignatureFrom insists on a CA issuer; a proxy's issuer is not one.
		if err := issuer.CheckSignature(p.SignatureAlgorithm, p.RawTBSCertificate, p.Signature); err != nil {
			return false, refuse(ErrProxy, "proxy %s is not signed by the key of %s (%v): it was not made by the holder of that certificate", dn, DN(issuer), err)
		}
		if err := checkValidity("proxy", p, now, "make a new one (vws pki proxy, or grid-proxy-init)"); err != nil {
			return false, err
		}
		cn, ok := certext.ExtendsByOneCN(p.RawSubject, issuer.RawSubject)
		if !ok {
			return false, refuse(ErrProxy, "proxy subject %s does not extend its issuer's subject %s by one CN: impersonation refused", dn, DN(issuer))
		}
		if info.Kind == certext.Legacy && cn != "proxy" && cn != "limited proxy" {
			return false, refuse(ErrProxy, "legacy proxy %s: its last CN must be \"proxy\" or \"limited proxy\"", dn)
		}
		if p.BasicConstraintsValid && p.IsCA {
			return false, refuse(ErrProxy, "proxy %s claims to be a CA, which RFC 3820 forbids", dn)
		}
		if certext.HasAltNames(p) {
			return false, refuse(ErrProxy, "proxy %s carries a subject or issuer alternative name, which RFC 3820 forbids", dn)
		}
		for _, oid := range p.UnhandledCriticalExtensions {
			if !oid.Equal(certext.OIDProxyCertInfo) {
				return false, refuse(ErrProxy, "proxy %s has a critical extension vws does not understand (%s)", dn, oid)
			}
		}
		lang := info.Info.Policy.Language
		switch {
		case lang.Equal(certext.OIDPolicyInheritAll):
			if limited {
				return false, refuse(ErrProxy, "proxy %s is a full proxy issued by a limited one, which may only issue limited proxies", dn)
			}
		case lang.Equal(certext.OIDPolicyLimited):
			limited = true
		case lang.Equal(certext.OIDPolicyIndependent):
			return false, refuse(ErrProxy, "proxy %s is an independent proxy, which carries none of its issuer's rights; use an inheritAll or limited proxy", dn)
		default:
			return false, refuse(ErrProxy, "proxy %s has a policy language vws does not understand (%s); use an inheritAll or limited proxy", dn, lang)
		}
		if remaining == 0 {
			return false, refuse(ErrProxy, "proxy %s exceeds the proxy path length its issuers allow", dn)
		}
		if remaining > 0 {
			remaining--
		}
		if pl := info.Info.PathLen; pl >= 0 && (remaining < 0 || pl < remaining) {
			remaining = pl
		}
	}
	return limited, nil
}

func checkValidity(what string, c *x509.Certificate, now time.Time, todo string) error {
	if now.After(c.NotAfter) {
		return refuse(ErrExpired, "%s %s expired at %s; %s", what, DN(c), c.NotAfter.UTC().Format(time.RFC3339), todo)
	}
	if now.Before(c.NotBefore) {
		return refuse(ErrExpired, "%s %s is not valid before %s; check the clocks", what, DN(c), c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// CAs returns the trusted CA certificates, sorted by subject.
func (t *Trust) CAs() []*x509.Certificate {
	cas := append([]*x509.Certificate(nil), t.state.Load().cas...)
	sort.Slice(cas, func(i, j int) bool { return DN(cas[i]) < DN(cas[j]) })
	return cas
}
