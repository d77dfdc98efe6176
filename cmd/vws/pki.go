package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/pki/certext"
)

// caKeyFile is where `vws pki ca` keeps the CA's private key, inside the CA
// directory but out of the files a CApath reader looks at.
const caKeyFile = "private/ca-key.pem"

func newPKICommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pki",
		Short: "Make test and demo grid credentials: a CA, host and user certificates, proxies, CRLs",
		Long: `Make a small grid PKI for tests and demos (not a production CA).

  vws pki ca --dir D                         a CA in D, in the /etc/grid-security/certificates
                                             layout (<hash>.0 certificate, <hash>.r0 CRL); its
                                             key goes to D/` + caKeyFile + ` (mode 0600)
  vws pki host --ca-dir D --name N --out P   host certificate P-cert.pem, key P-key.pem
  vws pki user --ca-dir D --cn N --out P     user certificate (with --vo-attribute FQANs)
  vws pki proxy --cert C --key K             an RFC 3820 proxy, like grid-proxy-init
  vws pki revoke --ca-dir D SERIAL|CERT...   revoke, rewriting the CRL

Keys are RSA-2048 unless --key-type ecdsa (P-256) is given to ca, host or user;
a proxy gets its issuer's key type unless its own --key-type says otherwise. ECDSA
makes WS-Security signing (vws --sign, require-signature) many times cheaper.

Serve with: vws serve --cert P-cert.pem --key P-key.pem --ca D`,
	}
	cmd.AddCommand(newPKICACommand(), newPKIHostCommand(), newPKIUserCommand(), newPKIProxyCommand(), newPKIRevokeCommand())
	return cmd
}

func newPKICACommand() *cobra.Command {
	var dir, dn, keyType string
	var days, crlDays, bits int
	cmd := &cobra.Command{
		Use:   "ca --dir DIR",
		Short: "Create a test CA in DIR (certificate <hash>.0, CRL <hash>.r0, key " + caKeyFile + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--dir is required: the CA directory to create (e.g. ./certificates)")
			}
			if err := errors.Join(checkDays("days", days), checkDays("crl-days", crlDays)); err != nil {
				return err
			}
			keyPath := filepath.Join(dir, caKeyFile)
			if _, err := os.Stat(keyPath); err == nil {
				if _, err := loadCA(dir); err != nil {
					return fmt.Errorf("%w: left by an interrupted vws pki ca? Remove %s and run again, or pick another --dir; nothing was written", err, keyPath)
				}
				return fmt.Errorf("%s already holds a CA (%s); pick another --dir", dir, keyPath)
			}
			kt, err := pki.ParseKeyType(keyType)
			if err != nil {
				return fmt.Errorf("--key-type: %w", err)
			}
			if kt == pki.KeyTypeECDSA {
				if cmd.Flags().Changed("key-bits") {
					return errors.New("--key-bits sets the size of RSA keys; ECDSA keys are P-256: drop one of --key-bits and --key-type ecdsa")
				}
				bits = 0
			} else if bits < 2048 || bits > 16384 {
				// Below 2048 bits Go (and the grid's TLS libraries) refuse the key; above
				// 16384 its generation runs for hours.
				return fmt.Errorf("--key-bits %d: give an RSA key size from 2048 to 16384 (4096 is a common choice for a CA)", bits)
			}
			ca, err := pki.NewCA(pki.CAOptions{Subject: dn, Validity: pki.Validity{Lifetime: daysDuration(days)}, KeyType: kt, KeyBits: bits})
			if err != nil {
				return err
			}
			now := time.Now()
			crl, err := ca.CRL(nil, now, now.Add(daysDuration(crlDays)), 1)
			if err != nil {
				return err
			}
			// The key last: it marks the directory as holding a CA, so a run cut short
			// before it leaves a certificate that a rerun replaces (same subject, same
			// <hash>.0), never a key without its certificate, which blocks a rerun.
			hash, err := pki.WriteCADir(dir, ca.Certificate, crl)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(keyPath), 0o700); err != nil {
				return fmt.Errorf("CA key directory: %w", err)
			}
			key, err := pki.KeyPEM(ca.Key)
			if err != nil {
				return err
			}
			if err := pki.WriteFileAtomic(keyPath, key, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA %s\n  certificate %s\n  CRL         %s (next update %s)\n  key         %s\n",
				pki.DN(ca.Certificate), filepath.Join(dir, hash+".0"), filepath.Join(dir, hash+".r0"),
				now.Add(daysDuration(crlDays)).UTC().Format(time.RFC3339), keyPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "CA directory to create (required)")
	f.StringVar(&dn, "dn", "/O=Grid/OU=vws/CN=vws Test CA", "the CA's subject, one-line form")
	f.IntVar(&days, "days", 3650, "validity in days")
	f.IntVar(&crlDays, "crl-days", 30, "days until the CRL's next update (verifiers refuse it after that; vws pki revoke renews it)")
	f.IntVar(&bits, "key-bits", pki.DefaultKeyBits, "RSA key size")
	keyTypeFlag(f, &keyType, "rsa")
	return cmd
}

// issueFlags are what the host and user commands share: the CA that issues, the
// output prefix, validity and key type.
type issueFlags struct {
	caDir, out, keyType string
	days                int
	force               bool
}

func (o *issueFlags) register(f *pflag.FlagSet) {
	f.StringVar(&o.caDir, "ca-dir", "", "CA directory made by vws pki ca (required)")
	f.IntVar(&o.days, "days", 365, "validity in days")
	f.StringVar(&o.out, "out", "", "output prefix: writes PREFIX-cert.pem and PREFIX-key.pem (required; new ones, unless --force)")
	f.BoolVar(&o.force, "force", false, "replace an existing PREFIX-cert.pem and PREFIX-key.pem")
	keyTypeFlag(f, &o.keyType, "rsa")
}

// load reads the CA and the key type.
func (o *issueFlags) load() (*pki.Credential, pki.KeyType, error) {
	if err := checkDays("days", o.days); err != nil {
		return nil, "", err
	}
	ca, err := loadCA(o.caDir)
	if err != nil {
		return nil, "", err
	}
	kt, err := pki.ParseKeyType(o.keyType)
	if err != nil {
		return nil, "", fmt.Errorf("--key-type: %w", err)
	}
	return ca, kt, nil
}

func (o *issueFlags) validity() pki.Validity { return pki.Validity{Lifetime: daysDuration(o.days)} }

func newPKIHostCommand() *cobra.Command {
	var o issueFlags
	var name string
	var ips, dns []string
	cmd := &cobra.Command{
		Use:   "host --ca-dir DIR --name NAME --out PREFIX",
		Short: "Issue a host certificate (subject .../CN=host/NAME) as PREFIX-cert.pem and PREFIX-key.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || o.out == "" {
				return errors.New("--name (the host name clients connect to) and --out (file prefix) are required")
			}
			ca, kt, err := o.load()
			if err != nil {
				return err
			}
			ho := pki.HostOptions{Name: name, DNSNames: dns, Validity: o.validity(), KeyType: kt}
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("--ip %q is not an IP address", s)
				}
				ho.IPs = append(ho.IPs, ip)
			}
			c, err := ca.IssueHost(ho)
			if err != nil {
				return err
			}
			return writeIssued(cmd.OutOrStdout(), o.out, c, o.force)
		},
	}
	f := cmd.Flags()
	o.register(f)
	f.StringVar(&name, "name", "", "host name: CN=host/NAME and a DNS (or IP) subject alternative name")
	f.StringSliceVar(&ips, "ip", nil, "IP addresses clients use, e.g. 127.0.0.1 (repeatable)")
	f.StringSliceVar(&dns, "dns", nil, "further DNS names (repeatable)")
	return cmd
}

func newPKIUserCommand() *cobra.Command {
	var o issueFlags
	var cn string
	var attrs []string
	cmd := &cobra.Command{
		Use:   "user --ca-dir DIR --cn NAME --out PREFIX",
		Short: "Issue a user certificate (subject .../CN=NAME) as PREFIX-cert.pem and PREFIX-key.pem",
		Long: `Issue a user certificate. Each --vo-attribute is a VOMS-style FQAN such as
/atlas/Role=production that the CA asserts in the certificate's vws-vo-attributes
extension (OID 1.3.6.1.4.1.59999.1.1, a SEQUENCE OF UTF8String); vws trusts it on
certificates issued by a trusted CA only, never on proxies.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cn == "" || o.out == "" {
				return errors.New("--cn (the user's name) and --out (file prefix) are required")
			}
			ca, kt, err := o.load()
			if err != nil {
				return err
			}
			c, err := ca.IssueUser(pki.UserOptions{CN: cn, VOAttributes: attrs, Validity: o.validity(), KeyType: kt})
			if err != nil {
				return err
			}
			return writeIssued(cmd.OutOrStdout(), o.out, c, o.force)
		},
	}
	f := cmd.Flags()
	o.register(f)
	f.StringVar(&cn, "cn", "", "the user's common name")
	f.StringArrayVar(&attrs, "vo-attribute", nil, "a VO attribute (FQAN) such as /atlas/Role=production (repeatable)")
	return cmd
}

func newPKIProxyCommand() *cobra.Command {
	var out, keyType string
	var hours float64
	var limited, legacy bool
	var pathLen int
	cmd := &cobra.Command{
		Use:   "proxy [--cert C --key K] [--hours 12] [--limited] [--path-length N] [--out FILE]",
		Short: "Make an RFC 3820 proxy from a user certificate or another proxy, like grid-proxy-init",
		Long: `Make a proxy certificate signed by --cert/--key (default: $X509_USER_CERT and
$X509_USER_KEY, else ~/.globus/usercert.pem and userkey.pem; --cert may also be a proxy
file, to delegate further). The proxy, its new key and the issuing chain go to one file
of mode 0600 (default /tmp/x509up_u<uid>, where vws and Globus clients look for it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// NaN, infinity and hours past a time.Duration would come out as no
			// lifetime, and the proxy would get the default 12 h without a word.
			if !(hours > 0 && hours <= maxDays*24) {
				return fmt.Errorf("--hours %v: give a lifetime from above 0 to %d hours (the proxy ends with its issuing certificate at the latest)", hours, maxDays*24)
			}
			// Else a limit mistyped as a negative would quietly mean no limit at all.
			if pathLen < -1 {
				return fmt.Errorf("--path-length %d: give how many further proxies may be made from this one, 0 or more (0: none), or -1 for no limit; nothing was written", pathLen)
			}
			certFile, keyFile := tlsFlags.cert, tlsFlags.key
			// Else the key would be dropped for the default credential, and the proxy
			// made from a certificate other than the one the user meant.
			if keyFile != "" && certFile == "" {
				return errors.New("--key needs --cert: give the certificate the key belongs to with --cert, or leave --key out to use $X509_USER_CERT and $X509_USER_KEY (else ~/.globus); nothing was written")
			}
			if certFile == "" {
				certFile, keyFile = os.Getenv("X509_USER_CERT"), os.Getenv("X509_USER_KEY")
			}
			if certFile == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return fmt.Errorf("no --cert given and no home directory: %w", err)
				}
				certFile, keyFile = filepath.Join(home, ".globus", "usercert.pem"), filepath.Join(home, ".globus", "userkey.pem")
			}
			issuer, err := pki.LoadCredential(certFile, keyFile)
			if err != nil {
				return fmt.Errorf("issuing credential: %w (pass --cert and --key)", err)
			}
			if time.Now().After(issuer.Certificate.NotAfter) {
				return fmt.Errorf("%s in %s expired at %s: renew it first", pki.DN(issuer.Certificate), certFile, issuer.Certificate.NotAfter.UTC().Format(time.RFC3339))
			}
			if err := proxyIssuable(issuer, limited); err != nil {
				return fmt.Errorf("%s: %w; nothing was written", certFile, err)
			}
			o := pki.ProxyOptions{Validity: pki.Validity{Lifetime: time.Duration(hours * float64(time.Hour))}, Limited: limited, Legacy: legacy}
			if keyType != "" {
				if o.KeyType, err = pki.ParseKeyType(keyType); err != nil {
					return fmt.Errorf("--key-type: %w", err)
				}
			}
			if pathLen >= 0 {
				if legacy {
					return errors.New("--path-length needs an RFC 3820 proxy: legacy proxies have no ProxyCertInfo")
				}
				o.PathLength = pki.PathLength(pathLen)
			}
			p, err := pki.IssueProxy(issuer, o)
			if err != nil {
				return err
			}
			if out == "" {
				out = client.DefaultProxyFile()
			}
			if err := pki.WriteProxyFile(out, p); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "proxy %s\n  file   %s\n  valid  until %s\n",
				pki.DN(p.Certificate), out, p.Certificate.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.Float64Var(&hours, "hours", 12, "lifetime in hours (never beyond the issuing certificate's)")
	f.BoolVar(&limited, "limited", false, "make a limited proxy (id-ppl-limited)")
	f.BoolVar(&legacy, "old", false, "make a legacy (pre-RFC 3820) Globus proxy")
	f.IntVar(&pathLen, "path-length", -1, "how many further proxies may be made from this one (-1: no limit)")
	f.StringVar(&out, "out", "", "proxy file to write (default /tmp/x509up_u<uid>)")
	keyTypeFlag(f, &keyType, "")
	return cmd
}

// proxyIssuable refuses to make from issuer (delegating a proxy further) a proxy
// that every verifier refuses: a full proxy of a limited one, or one more than a
// proxy path length of issuer's chain allows (counted as pki.Trust.Verify does).
func proxyIssuable(issuer *pki.Credential, limited bool) error {
	chain := issuer.FullChain()
	ee := certext.EndEntity(chain)
	if ee < 0 {
		ee = len(chain)
	}
	remaining, wasLimited := -1, false // proxies still allowed below; -1: unconstrained
	for i := ee - 1; i >= 0; i-- {
		p := certext.Classify(chain[i])
		wasLimited = wasLimited || p.Limited
		if remaining > 0 {
			remaining--
		}
		if pl := p.Info.PathLen; p.Kind == certext.RFC3820 && pl >= 0 && (remaining < 0 || pl < remaining) {
			remaining = pl
		}
	}
	if wasLimited && !limited {
		return fmt.Errorf("%s is a limited proxy, whose proxies must be limited too: add --limited", pki.DN(issuer.Certificate))
	}
	if remaining == 0 {
		return fmt.Errorf("%s allows no further proxies (its proxy path length is used up): make the proxy from the user certificate instead", pki.DN(issuer.Certificate))
	}
	return nil
}

func newPKIRevokeCommand() *cobra.Command {
	var caDir string
	var crlDays int
	cmd := &cobra.Command{
		Use:   "revoke --ca-dir DIR [SERIAL|CERTFILE]...",
		Short: "Revoke certificates (by serial number or PEM file) and rewrite the CA's CRL; with none, just renew the CRL",
		Long: `Revoke certificates (by serial number or PEM file) and rewrite the CA's CRL; with
none, just renew the CRL.

A serial is read as hex when written as openssl prints it (serial=0A1B2C, from
openssl x509 -noout -serial), 0x-prefixed (0x0A1B2C), as colon-separated bytes
(0A:1B:2C) or holding a letter A-F (0A1B2C); as decimal, as vws pki prints it, when it
is an odd number of digits. An even number of digits alone (1234) may be openssl's hex
or a decimal, and is refused: write it 0x1234 or serial=1234 for hex, or a decimal in
its 0x form (vws pki prints each serial both ways), or give the certificate file.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDays("crl-days", crlDays); err != nil {
				return err
			}
			ca, err := loadCA(caDir)
			if err != nil {
				return err
			}
			entries, number, err := currentCRL(caDir, ca)
			if err != nil {
				return err
			}
			now := time.Now()
			var revoked []*big.Int // said only once the CRL that revokes them is written
			for _, a := range args {
				serial, err := serialOf(a, ca.Certificate)
				if err != nil {
					return fmt.Errorf("%w; nothing was revoked", err)
				}
				dup := false
				for _, e := range entries {
					dup = dup || e.Serial.Cmp(serial) == 0
				}
				if !dup {
					entries = append(entries, pki.RevokedSerial{Serial: serial, At: now})
				}
				revoked = append(revoked, serial)
			}
			next := now.Add(daysDuration(crlDays))
			crl, err := ca.CRL(entries, now, next, number+1)
			if err != nil {
				return err
			}
			if err := pki.WriteCRL(caDir, ca.Certificate, crl); err != nil {
				return err
			}
			for _, serial := range revoked {
				fmt.Fprintf(cmd.OutOrStdout(), "revoked serial %s (0x%x)\n", serial, serial)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CRL of %s: %d revoked, next update %s\n", pki.DN(ca.Certificate), len(entries), next.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&caDir, "ca-dir", "", "CA directory made by vws pki ca (required)")
	cmd.Flags().IntVar(&crlDays, "crl-days", 30, "days until the new CRL's next update")
	return cmd
}

// loadCA reads the CA of a directory made by `vws pki ca`: its key, and the
// certificate among <hash>.N that the key belongs to.
func loadCA(dir string) (*pki.Credential, error) {
	if dir == "" {
		return nil, errors.New("--ca-dir is required: the directory made by vws pki ca")
	}
	keyPath := filepath.Join(dir, caKeyFile)
	key, err := pki.ReadKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%w (is %s a CA directory made by vws pki ca?)", err, dir)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.[0-9]"))
	for _, f := range files {
		certs, err := pki.ReadCertificates(f)
		if err != nil {
			continue
		}
		for _, c := range certs {
			if k, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && c.IsCA && k.Equal(key.Public()) {
				return &pki.Credential{Certificate: c, Key: key}, nil
			}
		}
	}
	return nil, fmt.Errorf("no CA certificate in %s matches the key %s", dir, keyPath)
}

// currentCRL returns the entries and number of the CA's CRL in dir (none and 0
// when there is none yet).
func currentCRL(dir string, ca *pki.Credential) ([]pki.RevokedSerial, int64, error) {
	hash, err := pki.SubjectHash(ca.Certificate.RawSubject)
	if err != nil {
		return nil, 0, err
	}
	path := filepath.Join(dir, hash+".r0")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("CRL: %w", err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, 0, fmt.Errorf("CRL %s: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(ca.Certificate); err != nil {
		return nil, 0, fmt.Errorf("CRL %s is not signed by %s: %w; remove it to start a new one", path, pki.DN(ca.Certificate), err)
	}
	var entries []pki.RevokedSerial
	for _, e := range crl.RevokedCertificateEntries {
		entries = append(entries, pki.RevokedSerial{Serial: e.SerialNumber, At: e.RevocationTime})
	}
	var n int64
	if crl.Number != nil && crl.Number.IsInt64() {
		n = crl.Number.Int64()
	}
	return entries, n, nil
}

// serialOf reads a serial number, or the serial of a certificate file the CA issued.
func serialOf(arg string, ca *x509.Certificate) (*big.Int, error) {
	if _, err := os.Stat(arg); err == nil {
		certs, err := pki.ReadCertificates(arg)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(certs[0].RawIssuer, ca.RawSubject) {
			return nil, fmt.Errorf("%s (%s) was issued by %s, not by this CA (%s)", arg, pki.DN(certs[0]), strings.TrimSpace(certs[0].Issuer.String()), pki.DN(ca))
		}
		return certs[0].SerialNumber, nil
	}
	s, err := pki.ParseSerial(arg)
	if errors.Is(err, pki.ErrAmbiguousSerial) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%q is neither a certificate file nor a serial: %w", arg, err)
	}
	return s, nil
}

func writeIssued(w io.Writer, prefix string, c *pki.Credential, force bool) error {
	certFile, keyFile := prefix+"-cert.pem", prefix+"-key.pem"
	// A key is the only copy there is: one written over leaves the certificate
	// issued for it (and handed out) without it.
	for _, f := range []string{keyFile, certFile} {
		if _, err := os.Stat(f); err == nil && !force {
			return fmt.Errorf("--out %s: %s exists (another credential?): give another prefix, or --force to replace it; nothing was written", prefix, f)
		}
	}
	if err := pki.WriteCredential(certFile, keyFile, c); err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\n  serial      %s (0x%x)\n  certificate %s\n  key         %s\n  valid until %s\n",
		pki.DN(c.Certificate), c.Certificate.SerialNumber, c.Certificate.SerialNumber, certFile, keyFile,
		c.Certificate.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// keyTypeFlag adds --key-type; def "" means the issuer's key type (proxies).
func keyTypeFlag(f *pflag.FlagSet, p *string, def string) {
	usage := "key type: rsa (2048 bits, what Globus tools expect) or ecdsa (P-256: signs WS-Security messages far faster)"
	if def == "" {
		usage += "; default: the issuing certificate's"
	}
	f.StringVar(p, "key-type", def, usage)
}

func daysDuration(d int) time.Duration { return time.Duration(d) * 24 * time.Hour }

// maxDays bounds --days and --crl-days: a hundred years, well inside a time.Duration.
const maxDays = 36500

// checkDays refuses a --days or --crl-days that is not a whole number of days from 1
// to maxDays: a CRL whose next update is now is stale at once, and verifiers then
// refuse every certificate of its CA.
func checkDays(flag string, d int) error {
	if d < 1 || d > maxDays {
		return fmt.Errorf("--%s %d: give between 1 and %d days", flag, d, maxDays)
	}
	return nil
}
