package main

// What a user sees when a command goes wrong: one line on stderr that says what was
// wrong and what to do, never cobra's or Go's raw wording where it says neither.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/wsa"
)

// Exit codes: 0 success, 1 usage or local failure, 2 the service answered with a
// fault (or, for the image pool's HTTP endpoints, a refusal), 130 interrupted
// (Ctrl-C), as shells report a command SIGINT ended.
const (
	exitError       = 1
	exitFault       = 2
	exitInterrupted = 130
)

// run executes the command line args and returns the exit code; an error is printed
// on stderr as one line. ctx is cancelled on Ctrl-C.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var fe *client.FaultError
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		var ie *interruptedError
		if errors.As(err, &ie) {
			fmt.Fprintln(stderr, "vws: interrupted:", ie.msg)
		} else {
			fmt.Fprintln(stderr, "vws: interrupted before the answer came; the server may still complete the request")
		}
		return exitInterrupted
	case errors.As(err, &fe):
		fmt.Fprintln(stderr, "vws: fault:", fe.Error())
		return exitFault
	}
	var re *refusalError
	if errors.As(err, &re) {
		fmt.Fprintln(stderr, "vws: refused:", re.Error())
		return exitFault
	}
	fmt.Fprintln(stderr, "vws:", describe(err))
	return exitError
}

// describe is the message of a local or transport error.
func describe(err error) string {
	var ce *connError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Op == "parse" {
		if from, ok := rawAddressSource(ue.URL); ok {
			return fmt.Sprintf("%q is not a URL: write http://HOST:PORT/... or https://HOST:PORT/... (%s)", ue.URL, from)
		}
		return fmt.Sprintf("%q is not a URL: write http://HOST:PORT or https://HOST:PORT (--url, $VWS_URL, --host)", ue.URL)
	}
	return err.Error()
}

// interruptedError says what an interrupted command leaves behind.
type interruptedError struct{ msg string }

func (e *interruptedError) Error() string { return "interrupted: " + e.msg }
func (e *interruptedError) Unwrap() error { return context.Canceled }

// polish gives every command of the tree the error wording of this file: argument
// and flag errors name the usage, group commands refuse unknown subcommands, and
// --url / $VWS_URL must be a URL.
func polish(root *cobra.Command) {
	root.SetFlagErrorFunc(flagError)
	root.PersistentPreRunE = checkURLFlags
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args = cobra.ArbitraryArgs
			c.RunE = groupRun
		} else if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// usageArgs wraps a cobra argument check: its error says which argument is missing
// or unexpected, and the usage line.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		if err == nil {
			return nil
		}
		usage := "; usage: " + cmd.UseLine()
		for n := 1; n <= len(args); n++ {
			if check(cmd, args[:len(args)-n]) == nil {
				extra := args[len(args)-n:]
				if n == 1 {
					return fmt.Errorf("unexpected argument %q%s", extra[0], usage)
				}
				return fmt.Errorf("unexpected arguments %q%s", extra, usage)
			}
		}
		more := args
		for n := 1; n <= 3; n++ {
			more = append(more[:len(more):len(more)], "x")
			if check(cmd, more) == nil {
				return fmt.Errorf("missing argument%s", usage)
			}
		}
		return fmt.Errorf("%w%s", err, usage)
	}
}

// groupRun is the Run of a command that only groups others: alone it shows its
// help; with an argument it refuses it as an unknown command.
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q for %s", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return fmt.Errorf("%s; its commands are %s (see %s --help)", msg, strings.Join(names, ", "), cmd.CommandPath())
}

// flagError rewords pflag's errors: a bad value says what a good one looks like.
func flagError(cmd *cobra.Command, err error) error {
	var iv *pflag.InvalidValueError
	if errors.As(err, &iv) {
		f := iv.GetFlag()
		var want string
		switch f.Value.Type() {
		case "duration":
			want = "is not a duration: write one such as 90s, 15m, 2h or 1h30m"
		case "int", "int64", "int32", "uint", "uint64":
			want = "is not a whole number"
			// A size flag counts MiB: a value with a unit says what was meant.
			if strings.Contains(f.Usage, "in MiB") {
				want += " of MiB"
				if mib, ok := sizeInMiB(iv.GetValue()); ok {
					want += fmt.Sprintf(": for %s write --%s %d", iv.GetValue(), f.Name, mib)
				} else {
					want += fmt.Sprintf(", e.g. --%s 1024 for 1 GiB", f.Name)
				}
			}
		case "bool":
			want = "is not true or false"
		default:
			want = fmt.Sprintf("is not valid (%v); see %s --help", errors.Unwrap(iv), cmd.CommandPath())
		}
		return fmt.Errorf("--%s %q %s", f.Name, iv.GetValue(), want)
	}
	return fmt.Errorf("%w; see %s --help", err, cmd.CommandPath())
}

// sizeInMiB reads a size with a binary unit (512M, 1G, 1.5GiB, 2T) as a whole
// number of MiB.
func sizeInMiB(s string) (int64, bool) {
	s = strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	if s == "" {
		return 0, false
	}
	shift := map[byte]float64{'K': 1.0 / 1024, 'M': 1, 'G': 1024, 'T': 1024 * 1024}[s[len(s)-1]]
	if shift == 0 {
		return 0, false
	}
	n, err := strconv.ParseFloat(s[:len(s)-1], 64)
	mib := n * shift
	if err != nil || n <= 0 || mib != float64(int64(mib)) {
		return 0, false
	}
	return int64(mib), true
}

// checkURLFlags refuses a --url (or $VWS_URL) or --host that is not an http(s) URL,
// before anything is sent.
func checkURLFlags(cmd *cobra.Command, _ []string) error {
	if f := cmd.Flags().Lookup("url"); f != nil {
		from := "--url"
		if f.Value.String() == "" {
			from = "$VWS_URL"
		}
		if os.Getenv("VWS_URL") != "" || f.Value.String() != "" {
			if err := checkBaseURL(from, baseURL(f.Value.String())); err != nil {
				return err
			}
		}
	}
	if f := cmd.Flags().Lookup("host"); f != nil && f.Value.Type() == "string" && f.Value.String() != "" {
		if err := checkManagerArg("--host", f.Value.String()); err != nil {
			return err
		}
	}
	return nil
}

func checkBaseURL(from, s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q is not a vws URL: write http://HOST:PORT or https://HOST:PORT", from, s)
	}
	// The service paths are appended to it: behind a query or fragment they would be
	// no part of the path.
	if strings.ContainsAny(s, "?#") {
		base := *u
		base.RawQuery, base.ForceQuery, base.Fragment, base.RawFragment = "", false, "", ""
		return fmt.Errorf("%s %q has a query or fragment, which the service paths vws appends would end up in: give %s", from, u.Redacted(), base.Redacted())
	}
	// The commands append the service path themselves: a service address here
	// would be sent to as <address>/wsrf/services/..., and its 404 misleads.
	if i := strings.Index(u.Path+"/", "/wsrf/services/"); i >= 0 {
		base := *u
		base.Path, base.RawPath, base.RawQuery, base.Fragment = u.Path[:i], "", "", ""
		return fmt.Errorf("%s %q is a service's address, not the base URL of vws: give %s (vws adds /wsrf/services/...)", from, s, base.String())
	}
	return nil
}

// connError is a failure to talk HTTP with the server, worded for the user.
type connError struct {
	msg string
	err error
}

func (e *connError) Error() string { return e.msg }
func (e *connError) Unwrap() error { return e.err }

// addressSources says, for the addresses a command took from somewhere other than
// --url / $VWS_URL (an EPR file, --host, a manager reference), where each came
// from: the advice on a connection failure must name what the user can correct.
var addressSources struct {
	sync.Mutex
	m   map[string]string
	raw map[string]string // as given, also what does not parse as a URL
}

// noteAddress records that addr (a service address or base URL) came from from, a
// noun phrase such as "--host" or "the address in EPR file ws.xml".
func noteAddress(addr, from string) {
	addr = strings.TrimSpace(addr)
	addressSources.Lock()
	defer addressSources.Unlock()
	if addressSources.raw == nil {
		addressSources.raw = map[string]string{}
	}
	addressSources.raw[addr] = from
	u, err := url.Parse(addr)
	if err != nil {
		return
	}
	if addressSources.m == nil {
		addressSources.m = map[string]string{}
	}
	addressSources.m[addressKey(u)] = from
}

// rawAddressSource is where an address that may not parse was taken from: noted as
// given, or under an address noted so.
func rawAddressSource(addr string) (string, bool) {
	addressSources.Lock()
	defer addressSources.Unlock()
	best, from := "", ""
	for noted, f := range addressSources.raw {
		if strings.HasPrefix(addr, noted) && len(noted) > len(best) {
			best, from = noted, f
		}
	}
	return from, best != ""
}

// forgetAddresses empties addressSources, for a new command line.
func forgetAddresses() {
	addressSources.Lock()
	addressSources.m, addressSources.raw = nil, nil
	addressSources.Unlock()
}

// addressKey is u as one service address: scheme and host in lower case, a default
// port (:80 for http, :443 for https) left out, the path without a trailing /.
func addressKey(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if p := u.Port(); (scheme == "http" && p == "80") || (scheme == "https" && p == "443") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return scheme + "://" + host + strings.TrimRight(u.Path, "/")
}

// addressSource is where the address u was taken from: a noted source of u or of a
// base URL u lies under, else --url / $VWS_URL.
func addressSource(u *url.URL) string {
	addressSources.Lock()
	defer addressSources.Unlock()
	for key := addressKey(u); ; {
		if from, ok := addressSources.m[key]; ok {
			return from
		}
		i := strings.LastIndexByte(key, '/')
		if i < 0 || strings.HasSuffix(key[:i], "/") {
			return "--url / $VWS_URL"
		}
		key = key[:i]
	}
}

// explainTransport words a transport failure of req: what was wrong with the
// connection, and which flag, variable or file to fix.
func explainTransport(req *http.Request, err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce *connError
	if errors.As(err, &ce) {
		return err
	}
	server := req.URL.Scheme + "://" + req.URL.Host
	other := "https://" + req.URL.Host
	if req.URL.Scheme == "https" {
		other = "http://" + req.URL.Host
	}
	source := addressSource(req.URL)
	fix := "check " + source
	var (
		dnsErr     *net.DNSError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		opErr      *net.OpError
		alert      tls.AlertError
		record     tls.RecordHeaderError
	)
	msg := ""
	text := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("cannot reach vws at %s: connection refused; is vws serve running there? %s", server, fix)
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("cannot reach vws at %s: there is no host %q; %s", server, dnsErr.Name, fix)
	case strings.Contains(text, "malformed HTTP response"):
		said := text[strings.Index(text, "malformed HTTP response")+len("malformed HTTP response "):]
		msg = fmt.Sprintf("%s does not speak HTTP (it answered %s): it is not a vws server; %s", server, said, fix)
	case strings.Contains(text, "readLoopPeekFailLocked"):
		// The server spoke first (an SSH or SMTP banner) and net/http gave up on the
		// connection without saying what came: look once more, to name it.
		msg = fmt.Sprintf("%s does not speak HTTP (it sends %s before any request): it is not a vws server; %s", server, banner(req.URL.Host), fix)
	case errors.As(err, &record) && string(record.RecordHeader[:]) == "HTTP/",
		strings.Contains(text, "server gave HTTP response to HTTPS client"):
		msg = fmt.Sprintf("%s speaks plain HTTP, not HTTPS: use %s in %s", server, other, source)
	case errors.As(err, &record):
		msg = fmt.Sprintf("%s does not speak TLS (it answered %q): it is not a vws server; %s", server, record.RecordHeader[:], fix)
	case errors.As(err, &unknownCA):
		msg = fmt.Sprintf("the certificate of %s is not signed by a CA you trust: pass the site's CA with --ca CADIR (or $X509_CERT_DIR)", server)
	case errors.As(err, &hostErr):
		msg = fmt.Sprintf("the certificate of %s is not for %q (%v): use the host name it is for in %s", server, req.URL.Hostname(), hostErr, source)
	case errors.As(err, &invalidErr):
		msg = fmt.Sprintf("the certificate of %s is not valid (%v): tell the site administrator", server, invalidErr)
	case errors.As(err, &alert) || (errors.As(err, &opErr) && opErr.Op == "remote error"):
		switch {
		case strings.Contains(text, "certificate required"):
			msg = fmt.Sprintf("%s requires a client certificate: pass --cert (and --key), or make a proxy (vws pki proxy, grid-proxy-init)", server)
		case strings.Contains(text, "certificate"):
			msg = fmt.Sprintf("%s refused your certificate (%s): use one issued by a CA the site trusts, or make a fresh proxy", server, strings.TrimPrefix(text[strings.LastIndex(text, "tls: "):], "tls: "))
		default:
			msg = fmt.Sprintf("%s refused the TLS connection (%v)", server, err)
		}
	case errors.As(err, &opErr) && opErr.Op == "dial":
		msg = fmt.Sprintf("cannot reach vws at %s: %v; %s", server, opErr.Err, fix)
	default:
		return err
	}
	return &connError{msg: msg, err: err}
}

// httpsRefusal recognizes the answer of an HTTPS server to a plain HTTP request: a
// bare "400 Bad Request" saying so, or a reset while it is read. It returns resp
// intact when it is anything else.
func httpsRefusal(req *http.Request, resp *http.Response) (*http.Response, error) {
	if resp.StatusCode != http.StatusBadRequest || len(resp.Header) != 0 {
		return resp, nil
	}
	peek, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	if err == nil && !bytes.Contains(peek, []byte("HTTP request to an HTTPS server")) {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(peek), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	return nil, &connError{msg: fmt.Sprintf("http://%s speaks HTTPS, not plain HTTP: use https://%s in %s", req.URL.Host, req.URL.Host, addressSource(req.URL))}
}

// readEPRFile reads an EPR file, or from in when path is "-" (standard input, as
// most tools read "-", vws image import among them); its errors say what the file
// is instead, and hint what to give.
func readEPRFile(in io.Reader, path, hint string) (*wsa.EPR, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = readEPRStdin(in, hint)
		if err != nil {
			return nil, err
		}
	} else if data, err = os.ReadFile(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("EPR file %s does not exist; %s", path, hint)
		}
		if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
			return nil, fmt.Errorf("%s is a directory, not an EPR file; %s", path, hint)
		}
		return nil, fmt.Errorf("read EPR file: %w", err)
	}
	name, what := "EPR file "+path, path+" is not an EPR file"
	if path == "-" {
		name, what = "standard input", "standard input holds no EPR"
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s is empty; %s", name, hint)
	}
	epr, err := wsa.ReadEPRDocument(data)
	if err == nil {
		return epr, nil
	}
	doc := etree.NewDocument()
	if doc.ReadFromBytes(data) != nil || doc.Root() == nil {
		return nil, fmt.Errorf("%s: it is not XML; %s", what, hint)
	}
	return nil, fmt.Errorf("%s (<%s>: %w); %s", what, doc.Root().Tag, err, hint)
}

// maxEPRSize bounds an EPR read from standard input: one is a few hundred bytes,
// and a stream piped in by mistake (an image) would be read into memory whole.
const maxEPRSize = 1 << 20

// readEPRStdin reads the EPR document piped in on in, refusing a terminal (the
// command would wait for a document nobody is typing).
func readEPRStdin(in io.Reader, hint string) ([]byte, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return nil, fmt.Errorf("- reads the EPR from standard input, which is a terminal: pipe an EPR document in (e.g. cat ws.xml | vws status -), or %s", hint)
	}
	data, err := io.ReadAll(io.LimitReader(in, maxEPRSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the EPR from standard input: %w", err)
	}
	if len(data) > maxEPRSize {
		return nil, fmt.Errorf("standard input holds more than %d bytes, no EPR; %s", maxEPRSize, hint)
	}
	return data, nil
}

// readXMLFile reads an XML document the user named with flag, saying what the file
// is instead when it is not one.
func readXMLFile(flag, path, what string) (*etree.Element, error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s: no such file; give %s", flag, path, what)
	case err != nil:
		if fi, serr := os.Stat(path); serr == nil && fi.IsDir() {
			return nil, fmt.Errorf("%s %s is a directory; give %s", flag, path, what)
		}
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("%s %s is empty; give %s", flag, path, what)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("%s %s is not well-formed XML (%v); give %s", flag, path, err, what)
	}
	if doc.Root() == nil {
		return nil, fmt.Errorf("%s %s is not XML; give %s", flag, path, what)
	}
	// A SOAP message holds no processing instructions (services refuse one); they
	// mean nothing to vws, so the file's are left out rather than the file refused.
	dropProcInsts(doc.Root())
	return doc.Root(), nil
}

// dropProcInsts removes the processing instructions inside e.
func dropProcInsts(e *etree.Element) {
	for _, t := range slices.Clone(e.Child) {
		switch t := t.(type) {
		case *etree.ProcInst:
			e.RemoveChild(t)
		case *etree.Element:
			dropProcInsts(t)
		}
	}
}

// banner is what a server that speaks first says on a new connection, quoted, or a
// description when it cannot be read.
func banner(hostport string) string {
	c, err := net.DialTimeout("tcp", hostport, time.Second)
	if err != nil {
		return "bytes"
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, buf, 1)
	if n == 0 {
		return "bytes"
	}
	return strconv.Quote(strings.TrimSpace(string(buf[:n])))
}
