package wssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/vws-grid/vws/internal/xmldsigec"
	"hash"
	"sort"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
)

// Algorithm is a signature algorithm the Signer can use.
type Algorithm int

const (
	// RSASHA256 signs with rsa-sha256 and digests with sha256 (the default). Being
	// the zero value, it also stands for "SHA-256 with whatever the key is": with an
	// ECDSA key the Signer uses ECDSASHA256, so that a site that switches its keys to
	// ECDSA need not touch every Signer.
	RSASHA256 Algorithm = iota
	// RSASHA1 signs with rsa-sha1 and digests with sha1, as GT 4.0's WSS4J does; only
	// for peers that know nothing newer.
	RSASHA1
	// ECDSASHA256 signs with ecdsa-sha256 (RFC 4051) and digests with sha256; it
	// needs an ECDSA key.
	ECDSASHA256
)

// method returns the URIs and hash of a with a key of public key pub, refusing a
// pairing that cannot sign (an RSA algorithm with an ECDSA key, or the reverse).
func (a Algorithm) method(pub crypto.PublicKey) (sigURI, digestURI string, h crypto.Hash, err error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		switch a {
		case RSASHA256:
			return AlgRSASHA256, AlgSHA256, crypto.SHA256, nil
		case RSASHA1:
			return AlgRSASHA1, AlgSHA1, crypto.SHA1, nil
		case ECDSASHA256:
			return "", "", 0, errors.New("algorithm ecdsa-sha256 needs an ECDSA key, and the signing key is RSA")
		}
	case *ecdsa.PublicKey:
		switch a {
		case RSASHA256, ECDSASHA256:
			return AlgECDSASHA256, AlgSHA256, crypto.SHA256, nil
		case RSASHA1:
			return "", "", 0, errors.New("algorithm rsa-sha1 needs an RSA key, and the signing key is ECDSA")
		}
	default:
		return "", "", 0, fmt.Errorf("signing key is %T; only RSA and ECDSA keys are supported", pub)
	}
	return "", "", 0, fmt.Errorf("unknown signature algorithm %d", int(a))
}

// DefaultTTL is the Timestamp lifetime when Signer.TTL is zero.
const DefaultTTL = 5 * time.Minute

// Signer signs outgoing envelopes. It is safe for concurrent use once set up.
type Signer struct {
	// Key is the private key of Chain[0], RSA or ECDSA. It may be any crypto.Signer
	// (a token's, say) as long as its ECDSA signatures are ASN.1, as crypto.Signer
	// requires.
	Key crypto.Signer
	// Chain is the signer's certificate first, then (for a proxy) its issuers up to the
	// end-entity certificate and beyond as far as the peer needs them. One certificate
	// travels as an X509v3 token, more as an X509PKIPathv1 token.
	Chain []*x509.Certificate
	// Algorithm is RSASHA256 unless set, which with an ECDSA key means ECDSASHA256.
	Algorithm Algorithm
	// TTL is the Timestamp lifetime; DefaultTTL when zero.
	TTL time.Duration
	// Optional marks the Security header mustUnderstand="0": for a message the
	// receiver may take without checking it (a notification to a consumer that knows
	// no WS-Security), where the signature is for those who do.
	Optional bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Sign signs doc, a SOAP 1.1 envelope, in place: it inserts a wsse:Security header
// (mustUnderstand, unless Optional) as the first header block, creating soap:Header if needed, with a
// BinarySecurityToken, a Timestamp and a Signature over the Body, the Timestamp and
// every other header block, giving each a wsu:Id if it has none.
// Nothing may change doc's signed parts afterwards, including re-indenting it; Sign
// sets doc.WriteSettings so that doc.WriteTo writes exactly what was signed.
func (s *Signer) Sign(doc *etree.Document) error {
	if s.Key == nil || len(s.Chain) == 0 {
		return errors.New("wssec: signing needs a key and its certificate")
	}
	sigURI, digestURI, hashAlg, err := s.Algorithm.method(s.Key.Public())
	if err != nil {
		return fmt.Errorf("wssec: %w", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" || root.NamespaceURI() != soap.NS11 {
		return errors.New("wssec: signing needs a SOAP 1.1 envelope")
	}
	var header, body *etree.Element
	for _, c := range root.ChildElements() {
		if c.NamespaceURI() != soap.NS11 {
			continue
		}
		switch c.Tag {
		case "Header":
			header = c
		case "Body":
			body = c
		}
	}
	if body == nil {
		return errors.New("wssec: the envelope has no soap:Body to sign")
	}
	if header == nil {
		header = etree.NewElement(qualify(root.Space, "Header"))
		root.InsertChildAt(body.Index(), header)
	}
	// Timestamp first, then every header block (the WS-Addressing headers and the
	// resource key among them: what the message acts on must not be changed on the
	// way), then Body.
	var toSign []*etree.Element
	for _, h := range header.ChildElements() {
		if IsSecurityHeader(h) {
			if targetsUs(h) {
				return errors.New("wssec: the envelope already has a wsse:Security header")
			}
			continue
		}
		toSign = append(toSign, h)
	}
	toSign = append(toSign, body)

	token, tokenType, err := encodeToken(s.Chain)
	if err != nil {
		return err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	created := now().UTC()

	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("wssec: random ids: %w", err)
	}
	suffix := hex.EncodeToString(rnd[:])

	// wsu is declared once on the Envelope so that every wsu:Id below can use it.
	wsu := declarePrefix(root, "wsu", NSWSU)
	soapPrefix := lookupPrefix(root, soap.NS11)

	sec := etree.NewElement("wsse:Security")
	sec.CreateAttr("xmlns:wsse", NSWSSE)
	if soapPrefix == "" {
		soapPrefix = "wssoap"
		sec.CreateAttr("xmlns:wssoap", soap.NS11)
	}
	mustUnderstand := "1"
	if s.Optional {
		mustUnderstand = "0"
	}
	sec.CreateAttr(soapPrefix+":mustUnderstand", mustUnderstand)
	header.InsertChildAt(0, sec)

	ts := sec.CreateElement(wsu + ":Timestamp")
	ts.CreateAttr(wsu+":Id", "TS-"+suffix)
	ts.CreateElement(wsu + ":Created").SetText(created.Format(timeLayout))
	ts.CreateElement(wsu + ":Expires").SetText(created.Add(ttl).Format(timeLayout))
	toSign = append([]*etree.Element{ts}, toSign...)

	bstID := "X509-" + suffix
	bst := sec.CreateElement("wsse:BinarySecurityToken")
	bst.CreateAttr("EncodingType", EncodingBase64Binary)
	bst.CreateAttr("ValueType", tokenType)
	bst.CreateAttr(wsu+":Id", bstID)
	bst.SetText(token)

	sig := sec.CreateElement("ds:Signature")
	sig.CreateAttr("xmlns:ds", NSDS)
	si := sig.CreateElement("ds:SignedInfo")
	si.CreateElement("ds:CanonicalizationMethod").CreateAttr("Algorithm", NSExcC14N)
	si.CreateElement("ds:SignatureMethod").CreateAttr("Algorithm", sigURI)
	h := hashAlg.New()
	for i, el := range toSign {
		id := ensureID(el, wsu, fmt.Sprintf("%s-%d-%s", el.Tag, i, suffix))
		h.Reset()
		prefixes := prefixesOf(el)
		if err := canonicalize(h, el, prefixes); err != nil {
			return fmt.Errorf("wssec: digest of %s: %w", el.FullTag(), err)
		}
		ref := si.CreateElement("ds:Reference")
		ref.CreateAttr("URI", "#"+id)
		tr := ref.CreateElement("ds:Transforms").CreateElement("ds:Transform")
		tr.CreateAttr("Algorithm", NSExcC14N)
		if prefixes != "" {
			in := tr.CreateElement("ec:InclusiveNamespaces")
			in.CreateAttr("xmlns:ec", NSExcC14N)
			in.CreateAttr("PrefixList", prefixes)
		}
		ref.CreateElement("ds:DigestMethod").CreateAttr("Algorithm", digestURI)
		ref.CreateElement("ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(h.Sum(nil)))
	}
	sum, err := digestOf(hashAlg.New(), si, "")
	if err != nil {
		return fmt.Errorf("wssec: canonical SignedInfo: %w", err)
	}
	value, err := s.Key.Sign(rand.Reader, sum, hashAlg)
	if err != nil {
		return fmt.Errorf("wssec: signing SignedInfo: %w", err)
	}
	if pub, ok := s.Key.Public().(*ecdsa.PublicKey); ok {
		if value, err = xmldsigec.DERToRaw(value, xmldsigec.Size(pub)); err != nil {
			return fmt.Errorf("wssec: signing SignedInfo: %w", err)
		}
	}
	sig.CreateElement("ds:SignatureValue").SetText(base64.StdEncoding.EncodeToString(value))
	// etree's default escaping writes a CR in text, or a tab or newline in an attribute,
	// as the raw character, which the receiver's parser normalizes: the bytes would no
	// longer carry what was signed. Character references keep them.
	doc.WriteSettings.CanonicalText = true
	doc.WriteSettings.CanonicalAttrVal = true
	str := sig.CreateElement("ds:KeyInfo").CreateElement("wsse:SecurityTokenReference")
	r := str.CreateElement("wsse:Reference")
	r.CreateAttr("URI", "#"+bstID)
	r.CreateAttr("ValueType", tokenType)
	return nil
}

// prefixesOf is the InclusiveNamespaces PrefixList for signing el: every prefix in
// scope at el or declared inside it, and the default namespace where it needs it. Exclusive C14N leaves out a declaration that
// no element or attribute name uses, yet a QName in text or an attribute value
// (rp:GetResourceProperty's "vw:state", a TopicExpression) depends on it: listed, it
// is signed, and rebinding it after signing breaks the signature.
func prefixesOf(el *etree.Element) string {
	seen := map[string]bool{}
	add := func(e *etree.Element) {
		for _, a := range e.Attr {
			if a.Space == "xmlns" && a.Key != "xml" {
				seen[a.Key] = true
			}
		}
	}
	for p := el.Parent(); p != nil; p = p.Parent() {
		add(p)
	}
	var walk func(*etree.Element)
	walk = func(e *etree.Element) {
		add(e)
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(el)
	list := make([]string, 0, len(seen)+1)
	for p := range seen {
		list = append(list, p)
	}
	sort.Strings(list)
	if unsignedDefaultNamespace(el) != nil {
		// A default namespace exclusive c14n would leave unsigned: "#default" signs
		// it (listed only then, so every other signature reads as before).
		list = append(list, defaultToken)
	}
	return strings.Join(list, " ")
}

// timeLayout is xs:dateTime in UTC with milliseconds, as WSS implementations write it.
const timeLayout = "2006-01-02T15:04:05.000Z"

func digestOf(h hash.Hash, el *etree.Element, prefixList string) ([]byte, error) {
	if err := canonicalize(h, el, prefixList); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// encodeToken returns the BinarySecurityToken text and ValueType for chain.
func encodeToken(chain []*x509.Certificate) (string, string, error) {
	if len(chain) == 1 {
		return base64.StdEncoding.EncodeToString(chain[0].Raw), ValueTypeX509v3, nil
	}
	// A PkiPath runs from the certificate nearest the trust anchor to the signer's,
	// the reverse of Chain.
	path := make([]asn1.RawValue, len(chain))
	for i, c := range chain {
		path[len(chain)-1-i] = asn1.RawValue{FullBytes: c.Raw}
	}
	der, err := asn1.Marshal(path)
	if err != nil {
		return "", "", fmt.Errorf("wssec: encoding the certificate path: %w", err)
	}
	return base64.StdEncoding.EncodeToString(der), ValueTypeX509PKIPathv1, nil
}

// ensureID returns el's wsu:Id, first giving it id when it has none.
func ensureID(el *etree.Element, wsu, id string) string {
	if v, ok := attrNS(el, NSWSU, "Id"); ok {
		return v
	}
	if resolvePrefix(el, wsu) != NSWSU {
		// something between the Envelope and el rebinds the prefix
		el.CreateAttr("xmlns:"+wsu, NSWSU)
	}
	el.CreateAttr(wsu+":Id", id)
	return id
}

// declarePrefix returns a prefix bound to ns on root, declaring want (or a variant of
// it, if want is bound to something else there) when there is none.
func declarePrefix(root *etree.Element, want, ns string) string {
	if p := lookupPrefix(root, ns); p != "" {
		return p
	}
	p := want
	for i := 1; resolvePrefix(root, p) != ""; i++ {
		p = fmt.Sprintf("%s%d", want, i)
	}
	root.CreateAttr("xmlns:"+p, ns)
	return p
}

// lookupPrefix returns a prefix declared on el for ns, "" if there is none.
func lookupPrefix(el *etree.Element, ns string) string {
	for _, a := range el.Attr {
		if a.Space == "xmlns" && a.Value == ns {
			return a.Key
		}
	}
	return ""
}

// resolvePrefix returns the namespace prefix is bound to at el.
func resolvePrefix(el *etree.Element, prefix string) string {
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if a.Space == "xmlns" && a.Key == prefix {
				return a.Value
			}
		}
	}
	return ""
}

func qualify(prefix, local string) string {
	if prefix == "" {
		return local
	}
	return prefix + ":" + local
}
