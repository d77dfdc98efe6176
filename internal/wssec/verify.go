package wssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/vws-grid/vws/internal/xmldsigec"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// Defaults of the Verifier's limits.
const (
	DefaultMaxSkew = 5 * time.Minute
	DefaultMaxAge  = 15 * time.Minute
)

// Verifier checks the WS-Security signature of incoming envelopes (requests on the
// server, responses on the client). It is safe for concurrent use.
type Verifier struct {
	// VerifyChain validates the signer's certificates (leaf first, as the token carried
	// them) against the site's trust, proxy-aware, and says who signed. Required.
	VerifyChain func(chain []*x509.Certificate) (identity.Identity, error)
	// MaxSkew is the clock skew allowed; DefaultMaxSkew when zero.
	MaxSkew time.Duration
	// MaxAge is the longest Created..Expires window accepted; DefaultMaxAge when zero.
	MaxAge time.Duration
	// Replay remembers messages until they expire. Nil turns replay detection off,
	// which only suits a client checking responses to its own requests.
	Replay *ReplayCache
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// AllowSHA1 admits rsa-sha1 signatures and sha1 digests. GT 4.0 clients sign with
	// them, so NewVerifier sets it; a zero Verifier refuses them.
	AllowSHA1 bool
}

// NewVerifier returns a Verifier with the defaults: VerifyChain as given, a
// ReplayCache of DefaultReplayMax entries, and SHA-1 allowed for GT 4.0 clients.
func NewVerifier(verifyChain func([]*x509.Certificate) (identity.Identity, error)) *Verifier {
	return &Verifier{VerifyChain: verifyChain, Replay: NewReplayCache(0), AllowSHA1: true}
}

// Result is what a verified envelope proved.
type Result struct {
	// Signed is false when the envelope carried no wsse:Security header for us; the
	// caller decides whether that is acceptable.
	Signed bool
	// Identity is the signer, as VerifyChain named it, with Signed set.
	Identity identity.Identity
	// Algorithm is the SignatureMethod URI.
	Algorithm string
	// SignedHeaders are the header blocks of the envelope the signature covers (the
	// WS-Addressing headers always; the resource key only if the signer included it).
	SignedHeaders []*etree.Element
}

// Covers reports whether the signature covered header block h.
func (r *Result) Covers(h *etree.Element) bool {
	for _, s := range r.SignedHeaders {
		if s == h {
			return true
		}
	}
	return false
}

// Verify checks env's wsse:Security header. With none for this node it returns
// &Result{Signed: false}. Otherwise the header must hold a Timestamp within its limits
// and a Signature by a trusted certificate over env's own Body, that Timestamp and
// every WS-Addressing header, each found by a unique wsu:Id; and the message must not
// have been seen before. Any failure is an *Error.
func (v *Verifier) Verify(env *soap.Envelope) (*Result, error) {
	var sec *etree.Element
	for _, h := range env.Headers {
		if !IsSecurityHeader(h) || !targetsUs(h) {
			continue
		}
		if sec != nil {
			return nil, fail(CodeInvalidSecurity, "more than one wsse:Security header for this node")
		}
		sec = h
	}
	if sec == nil {
		return &Result{Signed: false}, nil
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	skew := v.MaxSkew
	if skew <= 0 {
		skew = DefaultMaxSkew
	}

	var ts, sig *etree.Element
	for _, c := range sec.ChildElements() {
		switch ns := c.NamespaceURI(); {
		case ns == NSWSU && c.Tag == "Timestamp":
			if ts != nil {
				return nil, fail(CodeInvalidSecurity, "more than one wsu:Timestamp in the Security header")
			}
			ts = c
		case ns == NSDS && c.Tag == "Signature":
			if sig != nil {
				return nil, fail(CodeInvalidSecurity, "more than one ds:Signature in the Security header")
			}
			sig = c
		case ns == nsXEnc:
			return nil, fail(CodeInvalidSecurity, "encrypted messages (xenc:"+c.Tag+") are not supported; sign without encrypting")
		}
	}
	if ts == nil {
		return nil, fail(CodeInvalidSecurity, "the Security header has no wsu:Timestamp")
	}
	if sig == nil {
		return nil, fail(CodeInvalidSecurity, "the Security header has no ds:Signature")
	}
	expires, err := v.checkTimestamp(ts, now, skew)
	if err != nil {
		return nil, err
	}

	ids, err := collectIDs(env.Root)
	if err != nil {
		return nil, err
	}
	si, msg := child(sig, NSDS, "SignedInfo")
	if si == nil {
		return nil, fail(CodeInvalidSecurity, msg)
	}
	sigAlg, sigHash, siPrefixes, err := v.signedInfoMethods(si)
	if err != nil {
		return nil, err
	}
	covered, err := v.checkReferences(si, ids, env, sec, ts)
	if err != nil {
		return nil, err
	}
	if !covered[env.Body] {
		return nil, fail(CodeInvalidSecurity, "the signature does not cover the soap:Body")
	}
	if !covered[ts] {
		return nil, fail(CodeInvalidSecurity, "the signature does not cover the wsu:Timestamp")
	}
	res := &Result{Signed: true, Algorithm: sigAlg}
	var messageID string
	for _, h := range env.Headers {
		if covered[h] {
			res.SignedHeaders = append(res.SignedHeaders, h)
		} else if wsa.IsAddressingHeader(h) {
			return nil, fail(CodeInvalidSecurity, "the signature does not cover wsa:"+h.Tag)
		}
		if wsa.IsAddressingHeader(h) && h.Tag == "MessageID" {
			messageID = strings.TrimSpace(h.Text())
		}
	}

	chain, err := tokenChain(sig, sec, ids)
	if err != nil {
		return nil, err
	}
	sv, msg := child(sig, NSDS, "SignatureValue")
	if sv == nil {
		return nil, fail(CodeInvalidSecurity, msg)
	}
	sigText := trimBase64(sv.Text())
	value, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil {
		return nil, &Error{Code: CodeInvalidSecurity, Reason: "SignatureValue is not base64", Err: err}
	}
	sum, err := digestOf(sigHash.New(), si, siPrefixes)
	if err != nil {
		return nil, &Error{Code: CodeInvalidSecurity, Reason: "cannot canonicalize SignedInfo: " + err.Error(), Err: err}
	}
	if err := checkSignatureValue(chain[0], sigAlg, sigHash, sum, value); err != nil {
		return nil, err
	}

	if v.VerifyChain == nil {
		return nil, fail(CodeFailedAuthentication, "no certificate trust is configured to check the signer against")
	}
	id, err := v.VerifyChain(chain)
	if err != nil {
		return nil, &Error{Code: CodeFailedAuthentication, Reason: "the signer's certificate is not trusted: " + err.Error(), Err: err}
	}
	id.Signed = true
	res.Identity = id

	if v.Replay != nil {
		// Keyed by signer too, so that nobody can block another signer's message ids.
		// Without a message id, by what was signed (the SignedInfo's digest), not by
		// the SignatureValue: its base64 text can be written several ways, and an
		// ECDSA signature has a second valid value, all for one message.
		// Both keys when there is a message id, so that neither a new message id on
		// what was signed nor headers rearranged around it passes for a new message.
		keys := []string{"s\x00" + string(sum)}
		byID := ""
		if messageID != "" {
			byID = "m\x00" + id.DN + "\x00" + messageID
			keys = append(keys, byID)
		}
		if err := v.Replay.Check(id.DN, expires.Add(skew), now, keys...); err != nil {
			switch {
			case errors.Is(err, ErrReplayCacheFull):
				return nil, &Error{Code: CodeInvalidSecurity, Reason: "too many messages in flight to check for replay; retry later", Err: err}
			case errors.Is(err, ErrReplayNotRecorded):
				return nil, &Error{Code: CodeInvalidSecurity, Reason: "the service could not record the message against its replay; retry later", Err: err}
			case byID != "" && v.Replay.Seen(byID):
				return nil, &Error{Code: CodeInvalidSecurity, Reason: "message " + messageID + " was seen before: replay refused", Err: err}
			}
			return nil, &Error{Code: CodeInvalidSecurity, Reason: "this signature was seen before: replay refused", Err: err}
		}
	}
	return res, nil
}

// VerifyResponse parses a response envelope and verifies it like Verify, but refuses
// one that is not signed: a client that asks for signed responses must not take an
// unsigned one. A signed response carries wsa:RelatesTo rather than a MessageID; its
// replay key is then the SignatureValue.
func (v *Verifier) VerifyResponse(data []byte) (*soap.Envelope, *Result, error) {
	env, err := soap.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("wssec: reading the response: %w", err)
	}
	res, err := v.Verify(env)
	if err != nil {
		return env, nil, err
	}
	if !res.Signed {
		return env, res, fail(CodeInvalidSecurity, "the response is not signed")
	}
	return env, res, nil
}

func (v *Verifier) checkTimestamp(ts *etree.Element, now time.Time, skew time.Duration) (time.Time, error) {
	created, err := timestampField(ts, "Created")
	if err != nil {
		return time.Time{}, err
	}
	expires, err := timestampField(ts, "Expires")
	if err != nil {
		return time.Time{}, err
	}
	maxAge := v.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	switch {
	case expires.Before(now.Add(-skew)):
		return time.Time{}, fail(CodeMessageExpired, fmt.Sprintf("timestamp expired at %s (now %s)", expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	case created.After(now.Add(skew)):
		return time.Time{}, fail(CodeInvalidSecurity, fmt.Sprintf("timestamp created in the future, at %s (now %s); check the sender's clock", created.Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	case expires.Before(created):
		return time.Time{}, fail(CodeInvalidSecurity, "timestamp expires before it was created")
	case expires.Sub(created) > maxAge:
		return time.Time{}, fail(CodeInvalidSecurity, fmt.Sprintf("timestamp is valid for %s, longer than the %s accepted", expires.Sub(created), maxAge))
	}
	return expires, nil
}

func timestampField(ts *etree.Element, tag string) (time.Time, error) {
	el, msg := child(ts, NSWSU, tag)
	if el == nil {
		return time.Time{}, fail(CodeInvalidSecurity, "timestamp: "+msg)
	}
	t, err := parseDateTime(strings.TrimSpace(el.Text()))
	if err != nil {
		return time.Time{}, &Error{Code: CodeInvalidSecurity, Reason: "timestamp: wsu:" + tag + " is not an xs:dateTime", Err: err}
	}
	return t, nil
}

// parseDateTime reads an xs:dateTime; one without a time zone is taken as UTC.
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}

// collectIDs maps every wsu:Id in the document to its element, refusing duplicates:
// with two elements of one Id, which one a Reference meant is ambiguous, the opening
// of signature wrapping attacks.
func collectIDs(root *etree.Element) (map[string]*etree.Element, error) {
	ids := map[string]*etree.Element{}
	var walk func(el *etree.Element, scope map[string]string) error
	walk = func(el *etree.Element, scope map[string]string) error {
		own := false
		for _, a := range el.Attr {
			if a.Space == "xmlns" {
				if !own {
					scope = copyScope(scope)
					own = true
				}
				scope[a.Key] = a.Value
			}
		}
		for _, a := range el.Attr {
			if a.Key != "Id" || a.Space == "" || a.Space == "xmlns" || scope[a.Space] != NSWSU {
				continue
			}
			if _, dup := ids[a.Value]; dup {
				return fail(CodeInvalidSecurity, fmt.Sprintf("wsu:Id %q appears more than once in the message", a.Value))
			}
			ids[a.Value] = el
		}
		for _, c := range el.ChildElements() {
			if err := walk(c, scope); err != nil {
				return err
			}
		}
		return nil
	}
	return ids, walk(root, map[string]string{})
}

// signedInfoMethods checks the canonicalization and signature methods of SignedInfo.
func (v *Verifier) signedInfoMethods(si *etree.Element) (alg string, h crypto.Hash, prefixes string, err error) {
	cm, msg := child(si, NSDS, "CanonicalizationMethod")
	if cm == nil {
		return "", 0, "", fail(CodeInvalidSecurity, msg)
	}
	if a, _ := attrPlain(cm, "Algorithm"); a != NSExcC14N {
		return "", 0, "", fail(CodeInvalidSecurity, fmt.Sprintf("canonicalization %q is not accepted; use exclusive C14N (%s)", a, NSExcC14N))
	}
	sm, msg := child(si, NSDS, "SignatureMethod")
	if sm == nil {
		return "", 0, "", fail(CodeInvalidSecurity, msg)
	}
	alg, _ = attrPlain(sm, "Algorithm")
	switch {
	case alg == AlgRSASHA256 || alg == AlgECDSASHA256:
		h = crypto.SHA256
	case alg == AlgRSASHA1 && v.AllowSHA1:
		h = crypto.SHA1
	default:
		return "", 0, "", fail(CodeInvalidSecurity, fmt.Sprintf("signature algorithm %q is not accepted; use %s or %s", alg, AlgRSASHA256, AlgECDSASHA256))
	}
	return alg, h, inclusivePrefixes(cm), nil
}

// checkSignatureValue verifies value, the decoded SignatureValue, over sum (the
// digest of the canonical SignedInfo) with cert's key. The SignatureMethod must be
// the one for that kind of key: checking an RSA method against an ECDSA key (or the
// reverse) is not something to try and see, it is a malformed or forged message.
func checkSignatureValue(cert *x509.Certificate, alg string, h crypto.Hash, sum, value []byte) error {
	who := cert.Subject.String()
	var err error
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if alg == AlgECDSASHA256 {
			return fail(CodeInvalidSecurity, "the SignatureMethod is ecdsa-sha256 but the key of "+who+" is RSA: algorithm and key do not match")
		}
		err = rsa.VerifyPKCS1v15(pub, h, sum, value)
	case *ecdsa.PublicKey:
		if alg != AlgECDSASHA256 {
			return fail(CodeInvalidSecurity, fmt.Sprintf("the SignatureMethod is %s but the key of %s is ECDSA: algorithm and key do not match; use %s", alg, who, AlgECDSASHA256))
		}
		der, rawErr := xmldsigec.RawToDER(value, xmldsigec.Size(pub))
		if rawErr != nil {
			return &Error{Code: CodeFailedCheck, Reason: "the SignatureValue is not an ECDSA signature for the key of " + who + ": " + rawErr.Error(), Err: rawErr}
		}
		if !ecdsa.VerifyASN1(pub, sum, der) {
			err = errors.New("ecdsa: verification error")
		}
	default:
		return fail(CodeInvalidSecurityToken, fmt.Sprintf("the signing certificate has a %T key; only RSA and ECDSA are supported", cert.PublicKey))
	}
	if err != nil {
		return &Error{Code: CodeFailedCheck, Reason: "the SignatureValue does not verify with the key of " + who + ": SignedInfo was changed or signed by another key", Err: err}
	}
	return nil
}

// inclusivePrefixes returns the InclusiveNamespaces PrefixList of a c14n method or
// transform element, "" when it has none.
func inclusivePrefixes(el *etree.Element) string {
	for _, c := range el.ChildElements() {
		if is(c, NSExcC14N, "InclusiveNamespaces") {
			p, _ := attrPlain(c, "PrefixList")
			return p
		}
	}
	return ""
}

// checkReferences recomputes every Reference's digest and returns the set of elements
// they cover.
func (v *Verifier) checkReferences(si *etree.Element, ids map[string]*etree.Element, env *soap.Envelope, sec, ts *etree.Element) (map[*etree.Element]bool, error) {
	covered := map[*etree.Element]bool{}
	for _, ref := range si.ChildElements() {
		if !is(ref, NSDS, "Reference") {
			continue
		}
		uri, _ := attrPlain(ref, "URI")
		id, ok := strings.CutPrefix(uri, "#")
		if !ok || id == "" {
			return nil, fail(CodeInvalidSecurity, fmt.Sprintf("reference URI %q is not a same-document #id reference", uri))
		}
		el := ids[id]
		if el == nil {
			return nil, fail(CodeInvalidSecurity, fmt.Sprintf("reference #%s names no element with that wsu:Id", id))
		}
		// Both before any digest, which anyone can compute: a SignedInfo naming the
		// Body a thousand times would otherwise cost a thousand canonicalizations
		// before the SignatureValue is even looked at.
		if covered[el] {
			return nil, fail(CodeInvalidSecurity, fmt.Sprintf("reference #%s names an element referenced more than once", id))
		}
		if !signable(el, env, sec, ts) {
			// A signed element moved out of its place still digests the same; what
			// acts on the message reads it only there (a MessageID inside an unknown
			// header block is no MessageID, and would key replays differently).
			return nil, fail(CodeInvalidSecurity, fmt.Sprintf("reference #%s names a %s that is not the soap:Body, a header block, the wsu:Timestamp or a security token: a signed element moved elsewhere is refused", id, el.FullTag()))
		}
		prefixes, err := referenceTransforms(ref, id)
		if err != nil {
			return nil, err
		}
		dm, msg := child(ref, NSDS, "DigestMethod")
		if dm == nil {
			return nil, fail(CodeInvalidSecurity, "reference #"+id+": "+msg)
		}
		var h crypto.Hash
		switch alg, _ := attrPlain(dm, "Algorithm"); {
		case alg == AlgSHA256:
			h = crypto.SHA256
		case alg == AlgSHA1 && v.AllowSHA1:
			h = crypto.SHA1
		default:
			return nil, fail(CodeInvalidSecurity, fmt.Sprintf("reference #%s: digest algorithm %q is not accepted; use %s", id, alg, AlgSHA256))
		}
		dv, msg := child(ref, NSDS, "DigestValue")
		if dv == nil {
			return nil, fail(CodeInvalidSecurity, "reference #"+id+": "+msg)
		}
		want, err := base64.StdEncoding.DecodeString(trimBase64(dv.Text()))
		if err != nil {
			return nil, &Error{Code: CodeInvalidSecurity, Reason: "reference #" + id + ": DigestValue is not base64", Err: err}
		}
		got, err := digestOf(h.New(), el, prefixes)
		if err != nil {
			return nil, &Error{Code: CodeInvalidSecurity, Reason: "reference #" + id + ": cannot canonicalize: " + err.Error(), Err: err}
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return nil, fail(CodeFailedCheck, fmt.Sprintf("digest of #%s does not match: %s was changed after signing", id, describe(el, env, ts)))
		}
		if !slices.Contains(strings.Fields(prefixes), defaultToken) {
			if e := unsignedDefaultNamespace(el); e != nil {
				return nil, fail(CodeInvalidSecurity, fmt.Sprintf("the default namespace in scope at the signed %s is not covered by the signature (exclusive c14n leaves it out there), so a QName in content resolved through it could be changed after signing; bind that namespace to a prefix, or list #default in the transform's InclusiveNamespaces", e.FullTag()))
			}
		}
		covered[el] = true
	}
	return covered, nil
}

// signable says whether el is where a signed part of a request belongs: the Body, a
// header block, or the Timestamp or a token in sec, the Security header verified. A
// header block moved into a Security header (this one, or one for another actor that
// nobody here reads) is no header block any more, so only WS-Security's own elements
// count as tokens there.
func signable(el *etree.Element, env *soap.Envelope, sec, ts *etree.Element) bool {
	if el == env.Body || el == ts || slices.Contains(env.Headers, el) {
		return true
	}
	ns := el.NamespaceURI()
	return el.Parent() == sec && (ns == NSWSSE || ns == nsWSSE11)
}

// referenceTransforms accepts exactly one transform, exclusive C14N, and returns its
// PrefixList.
func referenceTransforms(ref *etree.Element, id string) (string, error) {
	tr, _ := child(ref, NSDS, "Transforms")
	if tr == nil {
		return "", fail(CodeInvalidSecurity, "reference #"+id+" has no exclusive C14N transform")
	}
	var t *etree.Element
	for _, c := range tr.ChildElements() {
		if !is(c, NSDS, "Transform") {
			continue
		}
		a, _ := attrPlain(c, "Algorithm")
		if a != NSExcC14N || t != nil {
			return "", fail(CodeInvalidSecurity, fmt.Sprintf("reference #%s: transform %q is not accepted; use exclusive C14N alone", id, a))
		}
		t = c
	}
	if t == nil {
		return "", fail(CodeInvalidSecurity, "reference #"+id+" has no exclusive C14N transform")
	}
	return inclusivePrefixes(t), nil
}

func describe(el *etree.Element, env *soap.Envelope, ts *etree.Element) string {
	switch {
	case el == env.Body:
		return "the Body"
	case el == ts:
		return "the Timestamp"
	case wsa.IsAddressingHeader(el):
		return "the wsa:" + el.Tag + " header"
	}
	return el.FullTag()
}

// tokenChain returns the certificates the Signature's KeyInfo points at, leaf first:
// a wsse:Reference to a BinarySecurityToken in this Security header, or certificates
// carried in ds:X509Data (as zeep's non-binary Signature writes them).
func tokenChain(sig, sec *etree.Element, ids map[string]*etree.Element) ([]*x509.Certificate, error) {
	ki, msg := child(sig, NSDS, "KeyInfo")
	if ki == nil {
		return nil, fail(CodeInvalidSecurityToken, msg)
	}
	holder := ki
	if str, _ := child(ki, NSWSSE, "SecurityTokenReference"); str != nil {
		holder = str
		if r, _ := child(str, NSWSSE, "Reference"); r != nil {
			uri, _ := attrPlain(r, "URI")
			id, ok := strings.CutPrefix(uri, "#")
			bst := ids[id]
			if !ok || bst == nil || bst.Parent() != sec || !is(bst, NSWSSE, "BinarySecurityToken") {
				return nil, fail(CodeInvalidSecurityToken, fmt.Sprintf("the token reference %q names no BinarySecurityToken in the Security header", uri))
			}
			return decodeToken(bst)
		}
	}
	if xd, _ := child(holder, NSDS, "X509Data"); xd != nil {
		var chain []*x509.Certificate
		for _, c := range xd.ChildElements() {
			if !is(c, NSDS, "X509Certificate") {
				continue
			}
			der, err := base64.StdEncoding.DecodeString(trimBase64(c.Text()))
			if err != nil {
				return nil, &Error{Code: CodeInvalidSecurityToken, Reason: "X509Certificate is not base64", Err: err}
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, &Error{Code: CodeInvalidSecurityToken, Reason: "X509Certificate is not a certificate: " + err.Error(), Err: err}
			}
			chain = append(chain, cert)
		}
		if len(chain) > 0 {
			return chain, nil
		}
	}
	return nil, fail(CodeInvalidSecurityToken, "KeyInfo names no X.509 token: use a wsse:SecurityTokenReference to a BinarySecurityToken")
}

// decodeToken reads an X509v3 or X509PKIPathv1 BinarySecurityToken, leaf first.
func decodeToken(bst *etree.Element) ([]*x509.Certificate, error) {
	if enc, ok := attrPlain(bst, "EncodingType"); ok && enc != EncodingBase64Binary {
		return nil, fail(CodeInvalidSecurityToken, fmt.Sprintf("BinarySecurityToken encoding %q is not supported; use Base64Binary", enc))
	}
	der, err := base64.StdEncoding.DecodeString(trimBase64(bst.Text()))
	if err != nil {
		return nil, &Error{Code: CodeInvalidSecurityToken, Reason: "BinarySecurityToken is not base64", Err: err}
	}
	switch vt, _ := attrPlain(bst, "ValueType"); vt {
	case ValueTypeX509v3:
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, &Error{Code: CodeInvalidSecurityToken, Reason: "X509v3 token is not a certificate: " + err.Error(), Err: err}
		}
		return []*x509.Certificate{cert}, nil
	case ValueTypeX509PKIPathv1:
		var path []asn1.RawValue
		rest, err := asn1.Unmarshal(der, &path)
		if err == nil && len(rest) > 0 {
			err = fmt.Errorf("%d bytes after the path", len(rest))
		}
		if err == nil && len(path) == 0 {
			err = fmt.Errorf("empty path")
		}
		if err != nil {
			return nil, &Error{Code: CodeInvalidSecurityToken, Reason: "X509PKIPathv1 token is not a certificate path: " + err.Error(), Err: err}
		}
		chain := make([]*x509.Certificate, len(path))
		for i, raw := range path {
			cert, err := x509.ParseCertificate(raw.FullBytes)
			if err != nil {
				return nil, &Error{Code: CodeInvalidSecurityToken, Reason: fmt.Sprintf("certificate %d of the X509PKIPathv1 token: %v", i, err), Err: err}
			}
			chain[len(path)-1-i] = cert // the path runs towards the signer
		}
		return chain, nil
	default:
		return nil, fail(CodeInvalidSecurityToken, fmt.Sprintf("BinarySecurityToken ValueType %q is not supported; use X509v3 or X509PKIPathv1", vt))
	}
}

// unsignedDefaultNamespace returns the first prefixed element in el whose in-scope
// default namespace differs from the one the canonical form gives it — the namespace
// of its nearest unprefixed ancestor inside el, or none —, or nil. Exclusive c14n
// renders a default namespace declaration only on unprefixed elements, so such a
// binding is not signed, and an unprefixed QName in text or an attribute value
// (wsrf's ResourceProperty="x") would resolve through whatever an intermediary put
// there. A reference whose InclusiveNamespaces lists "#default" signs the binding
// wherever it changes, and is not checked so.
func unsignedDefaultNamespace(el *etree.Element) *etree.Element {
	var walk func(e *etree.Element, inScope, signed string) *etree.Element
	walk = func(e *etree.Element, inScope, signed string) *etree.Element {
		if v, ok := defaultDeclaration(e); ok {
			inScope = v
		}
		if e.Space == "" {
			signed = inScope
		} else if inScope != signed {
			return e
		}
		for _, c := range e.ChildElements() {
			if r := walk(c, inScope, signed); r != nil {
				return r
			}
		}
		return nil
	}
	inScope := ""
	for p := el.Parent(); p != nil; p = p.Parent() {
		if v, ok := defaultDeclaration(p); ok {
			inScope = v
			break
		}
	}
	return walk(el, inScope, "")
}

// defaultDeclaration is e's own xmlns="..." declaration, if it has one.
func defaultDeclaration(e *etree.Element) (string, bool) {
	for _, a := range e.Attr {
		if a.Space == "" && a.Key == "xmlns" {
			return a.Value, true
		}
	}
	return "", false
}
