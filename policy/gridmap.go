package policy

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/vws-grid/vws/internal/identity"
)

// GridMap maps certificate DNs to local accounts, as a Globus grid-mapfile does.
type GridMap struct {
	source   string
	accounts map[string]string // DN -> first (default) account
}

// LoadGridMap reads a grid-mapfile.
func LoadGridMap(file string) (*GridMap, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("grid-mapfile: %w", err)
	}
	defer f.Close()
	return ParseGridMap(f, file)
}

// ParseGridMap reads grid-mapfile lines: `"DN" account[,account...]`, the DN quoted
// when it contains spaces (a backslash escapes a quote inside, and \xHH is the byte
// HH, as OpenSSL writes non-ASCII names), '#' comments; text after the accounts is
// ignored, as Globus does. The first account is the mapped one; a DN listed twice keeps
// its first line, as Globus does.
func ParseGridMap(r io.Reader, source string) (*GridMap, error) {
	gm := &GridMap{source: source, accounts: map[string]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		dn, rest, err := gridMapDN(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", source, n, err)
		}
		if i := strings.IndexByte(rest, '#'); i >= 0 {
			rest = rest[:i]
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			return nil, fmt.Errorf("%s:%d: want \"DN\" account[,account...]: no account after the DN", source, n)
		}
		// The accounts are the first field after the DN; Globus ignores what follows it.
		account, _, _ := strings.Cut(strings.Fields(rest)[0], ",")
		if account == "" {
			return nil, fmt.Errorf("%s:%d: account %q: want account[,account...], no comma before the first account", source, n, rest)
		}
		if !strings.HasPrefix(dn, "/") {
			return nil, fmt.Errorf("%s:%d: DN %q: want the OpenSSL one-line form /O=.../CN=...", source, n, dn)
		}
		dn = identity.CanonicalDN(dn) // /Email= and /E= are /emailAddress=, as Globus takes them
		if _, dup := gm.accounts[dn]; !dup {
			gm.accounts[dn] = account
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	return gm, nil
}

func gridMapDN(line string) (dn, rest string, err error) {
	if line[0] != '"' {
		dn, rest, _ = strings.Cut(line, " ")
		if strings.ContainsRune(dn, '\t') {
			dn, rest, _ = strings.Cut(line, "\t")
		}
		dn, _ = unescapeDN(dn, 0)
		return dn, rest, nil
	}
	dn, end := unescapeDN(line[1:], '"')
	if end < 0 {
		return "", "", fmt.Errorf("unterminated quoted DN")
	}
	return dn, line[1+end+1:], nil
}

// unescapeDN decodes s up to the first unescaped byte stop (0: to its end) as Globus
// reads a grid-mapfile DN, and returns where stop is (-1: not found). A backslash
// takes the next byte as it is, but \xHH is the byte HH: OpenSSL's one-line form,
// which grid-cert-info and the tools that write grid-mapfiles print, writes every
// byte outside printable ASCII so (é is \xC3\xA9), and read literally such a line
// would map no certificate.
func unescapeDN(s string, stop byte) (string, int) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+3 < len(s) && s[i+1] == 'x' && isHex(s[i+2]) && isHex(s[i+3]):
			v, _ := strconv.ParseUint(s[i+2:i+4], 16, 8)
			b.WriteByte(byte(v))
			i += 3
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case stop != 0 && c == stop:
			return b.String(), i
		default:
			b.WriteByte(c)
		}
	}
	if stop != 0 {
		return b.String(), -1
	}
	return b.String(), len(s)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Account returns the account dn maps to, "" when it is not listed.
func (gm *GridMap) Account(dn string) string { return gm.accounts[identity.CanonicalDN(dn)] }

// Len is the number of mapped DNs.
func (gm *GridMap) Len() int { return len(gm.accounts) }
