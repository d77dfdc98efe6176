package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// knownPrefixes lets property names and queries use short prefixes instead of
// {namespace}local.
var knownPrefixes = map[string]string{
	"vw": vwsns.Workspace, "hw": vwsns.Hardware, "net": vwsns.Network, "sw": vwsns.Software,
	"cap": vwsns.Capability, "fac": vwsns.Factory, "repo": vwsns.Repository, "mgr": vwsns.Manager,
}

// targetOptions are the GT-style ways to name a resource.
type targetOptions struct {
	baseURL string
	service string
	eprFile string
	keyName string
	dialect string
}

func (t *targetOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&t.baseURL, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	f.StringVarP(&t.service, "service", "s", "", "service URL (default <base>/wsrf/services/WorkspaceService)")
	f.StringVarP(&t.eprFile, "eprFile", "e", "", "file holding the resource's EndpointReference")
	f.StringVarP(&t.keyName, "key", "k", "", `resource key name as "{namespace}Name"; its value is the first argument`)
	f.StringVar(&t.dialect, "dialect", "", "gt4 or wsrf12 (default: the EPR file's, else wsrf12)")
}

// resolve builds the EPR and returns the arguments left after the key value.
func (t *targetOptions) resolve(cmd *cobra.Command, args []string) (*wsa.EPR, []string, error) {
	var d *dialect.Dialect
	switch t.dialect {
	case "":
	case "gt4":
		d = dialect.GT4
	case "wsrf12":
		d = dialect.WSRF12
	default:
		return nil, nil, fmt.Errorf("--dialect must be gt4 or wsrf12, not %q", t.dialect)
	}
	var epr *wsa.EPR
	if t.eprFile != "" {
		if t.service != "" || t.keyName != "" {
			return nil, nil, fmt.Errorf("give either --eprFile or --service/--key, not both")
		}
		var err error
		if epr, err = readEPRFile(cmd.InOrStdin(), t.eprFile, "give -e a file holding a wsa:EndpointReference (vws create -o writes one; -e - reads one from standard input), or name the resource with -s and -k"); err != nil {
			return nil, nil, err
		}
		// The service would answer with a fault about SOAP headers; the file is what
		// the user can fix.
		src := "EPR file " + t.eprFile
		if t.eprFile == "-" {
			src = "the EPR on standard input"
		}
		if isWorkspaceService(epr.Address) && len(epr.References) == 0 {
			return nil, nil, fmt.Errorf("%s names WorkspaceService but no workspace: it has no reference parameters (a workspace's EPR carries its vw:WorkspaceKey); give the EPR file vws create -o wrote, or -k vw:WorkspaceKey KEY", src)
		}
		noteAddress(epr.Address, "the address in "+src)
		noteURLUnused(cmd, t.baseURL, epr.Address, src)
		if d != nil && d.WSA != epr.Version {
			epr = convertEPR(epr, d.WSA)
		}
		return epr, args, nil
	}
	if d == nil {
		d = dialect.WSRF12
	}
	addr := t.service
	if addr != "" {
		noteAddress(addr, "-s/--service")
		noteURLUnused(cmd, t.baseURL, addr, "-s/--service")
	} else {
		addr = baseURL(t.baseURL) + "/wsrf/services/" + vwsns.WorkspaceService
	}
	epr = &wsa.EPR{Version: d.WSA, Address: addr}
	if t.keyName != "" {
		q, err := parseName(t.keyName)
		if err != nil {
			return nil, nil, fmt.Errorf("--key: %w", err)
		}
		if len(args) == 0 {
			return nil, nil, fmt.Errorf("--key %s needs the key's value as the first argument", t.keyName)
		}
		k := etree.NewElement("k:" + q.Local)
		k.CreateAttr("xmlns:k", q.Space)
		k.SetText(args[0])
		epr.References = append(epr.References, k)
		args = args[1:]
	} else if isWorkspaceService(addr) {
		// A workspace is a WS-Resource of WorkspaceService named by its key; the
		// service alone is no resource, and its fault says so less plainly.
		return nil, nil, fmt.Errorf("no resource named: give -e EPR-FILE or -k NAME VALUE (the workspace's key, e.g. -k vw:WorkspaceKey KEY)")
	}
	return epr, args, nil
}

// noteURLUnused says on stderr when a --url (base) is not where addr, taken from src,
// is: the resource is reached at addr, and the user who gave --url should know.
func noteURLUnused(cmd *cobra.Command, base, addr, src string) {
	a := strings.TrimSpace(addr)
	if i := strings.Index(a, "/wsrf/services/"); i >= 0 {
		a = a[:i]
	}
	if base != "" && !sameAddress(a, baseURL(base)) {
		fmt.Fprintf(cmd.ErrOrStderr(), "vws: note: the resource is reached at the address in %s, %s, not under --url %s\n", src, strings.TrimSpace(addr), base)
	}
}

// convertEPR re-expresses an EPR in the other WS-Addressing version; the reference
// elements themselves are the same in both.
func convertEPR(e *wsa.EPR, v wsa.Version) *wsa.EPR {
	c := *e
	c.Version = v
	return &c
}

// isWorkspaceService says whether addr is WorkspaceService's, whose resources (the
// workspaces) an EPR names by their key.
func isWorkspaceService(addr string) bool {
	return path.Base(strings.TrimRight(addrPath(strings.TrimSpace(addr)), "/")) == vwsns.WorkspaceService
}

// addrPath is the path of the address s, or s when it is no URL.
func addrPath(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Path
	}
	return s
}

func baseURL(flag string) string {
	if flag != "" {
		return strings.TrimRight(flag, "/")
	}
	if env := os.Getenv("VWS_URL"); env != "" {
		return strings.TrimRight(env, "/")
	}
	return "http://127.0.0.1:8080"
}

// parseName accepts {namespace}local or prefix:local with a known prefix.
// propertyName is parseName for a resource property of the resource epr names, with
// wsrl bound to its dialect's WS-ResourceLifetime (wsrl:TerminationTime, as vws status
// and query write it).
func propertyName(epr *wsa.EPR, s string) (wsa.QName, error) {
	if p, local, ok := strings.Cut(s, ":"); ok && p == "wsrl" && !strings.HasPrefix(s, "{") {
		return wsa.QName{Space: client.DialectOf(epr).RL, Local: local}, nil
	}
	return parseName(s)
}

func parseName(s string) (wsa.QName, error) {
	if strings.HasPrefix(s, "{") {
		return wsa.ParseClark(s)
	}
	if p, local, ok := strings.Cut(s, ":"); ok {
		ns, known := knownPrefixes[p]
		if !known {
			return wsa.QName{}, fmt.Errorf("unknown prefix %q in %q: write {namespace}%s or use one of vw, hw, net, sw, cap, fac, repo, mgr (and wsrl for a property)", p, s, local)
		}
		return wsa.QName{Space: ns, Local: local}, nil
	}
	return wsa.QName{}, fmt.Errorf("%q: write {namespace}name or prefix:name", s)
}

func newWSRFCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wsrf",
		Short: "GT-style WSRF verbs on any resource: get-property, get-properties, query, set-termination-time, destroy, subscribe",
	}
	cmd.AddCommand(wsrfGetProperty(), wsrfGetProperties(), wsrfQuery(), wsrfSetTerminationTime(), wsrfDestroy(), wsrfSubscribe())
	return cmd
}

func printElements(w io.Writer, els []*etree.Element) error {
	for _, el := range els {
		doc := etree.NewDocument()
		c := wsa.Detach(el)
		wsa.PruneNamespaces(c)
		doc.SetRoot(c)
		doc.Indent(2)
		if _, err := doc.WriteTo(w); err != nil {
			return err
		}
	}
	return nil
}

func wsrfGetProperty() *cobra.Command {
	t := &targetOptions{}
	cmd := &cobra.Command{
		Use:   "get-property [key-value] PROPERTY",
		Short: "Print one resource property ({namespace}name or vw:name)",
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, rest, err := t.resolve(cmd, args)
			if err != nil {
				return err
			}
			if len(rest) == 0 && t.keyName != "" {
				return fmt.Errorf("-k %s takes the key's value, then the property: -k NAME VALUE PROPERTY", t.keyName)
			}
			if len(rest) != 1 {
				return fmt.Errorf("give exactly one property name")
			}
			q, err := propertyName(epr, rest[0])
			if err != nil {
				return err
			}
			els, err := soapClient().GetResourceProperty(cmd.Context(), epr, q)
			if err != nil {
				return err
			}
			return printElements(cmd.OutOrStdout(), els)
		},
	}
	t.register(cmd)
	return cmd
}

func wsrfGetProperties() *cobra.Command {
	t := &targetOptions{}
	cmd := &cobra.Command{
		Use:   "get-properties [key-value] PROPERTY...",
		Short: "Print several resource properties",
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, rest, err := t.resolve(cmd, args)
			if err != nil {
				return err
			}
			if len(rest) == 0 && t.keyName != "" {
				return fmt.Errorf("-k %s takes the key's value, then the properties: -k NAME VALUE PROPERTY...", t.keyName)
			}
			if len(rest) == 0 {
				return fmt.Errorf("give at least one property name")
			}
			var qs []wsa.QName
			for _, a := range rest {
				q, err := propertyName(epr, a)
				if err != nil {
					return err
				}
				qs = append(qs, q)
			}
			els, err := soapClient().GetMultipleResourceProperties(cmd.Context(), epr, qs)
			if err != nil {
				return err
			}
			return printElements(cmd.OutOrStdout(), els)
		},
	}
	t.register(cmd)
	return cmd
}

func wsrfQuery() *cobra.Command {
	t := &targetOptions{}
	var nsFlags []string
	cmd := &cobra.Command{
		Use:   "query [key-value] [XPATH] [DIALECT]",
		Short: "Evaluate an XPath 1.0 query over the resource-property document (default \"/\")",
		Long: `Evaluate an XPath 1.0 query over the resource-property document. The prefixes
vw, hw, net, sw, cap, fac, repo and mgr are bound to the vws namespaces; bind more
with --ns prefix=namespace.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, rest, err := t.resolve(cmd, args)
			if err != nil {
				return err
			}
			expr := "/"
			if len(rest) > 0 {
				expr = rest[0]
			}
			if len(rest) > 1 && rest[1] != dialect.XPathDialect {
				return fmt.Errorf("only the XPath 1.0 dialect %s is supported", dialect.XPathDialect)
			}
			if len(rest) > 2 {
				return fmt.Errorf("too many arguments")
			}
			ns := map[string]string{}
			for p, u := range knownPrefixes {
				ns[p] = u
			}
			d := client.DialectOf(epr)
			ns["wsrl"] = d.RL
			for _, kv := range nsFlags {
				p, u, ok := strings.Cut(kv, "=")
				if !ok || p == "" || u == "" {
					return fmt.Errorf("--ns %q: write prefix=namespace", kv)
				}
				ns[p] = u
			}
			if p := unboundPrefix(expr, ns); p != "" {
				bound := slices.Sorted(maps.Keys(ns))
				return fmt.Errorf("prefix %q in the query is not bound: bind it with --ns %s=NAMESPACE (bound: %s)", p, p, strings.Join(bound, ", "))
			}
			resp, err := soapClient().QueryResourceProperties(cmd.Context(), epr, expr, ns)
			if err != nil {
				return err
			}
			if kids := resp.ChildElements(); len(kids) > 0 {
				return printElements(cmd.OutOrStdout(), kids)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Text())
			return nil
		},
	}
	t.register(cmd)
	cmd.Flags().StringArrayVar(&nsFlags, "ns", nil, "bind a prefix for the query: prefix=namespace")
	return cmd
}

func wsrfSetTerminationTime() *cobra.Command {
	t := &targetOptions{}
	cmd := &cobra.Command{
		Use:   "set-termination-time [key-value] SECONDS|infinity",
		Short: "Schedule the resource's destruction SECONDS from now, or never",
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, rest, err := t.resolve(cmd, args)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return fmt.Errorf("give the lifetime in seconds from now, or infinity")
			}
			var when *time.Time
			if rest[0] != "infinity" {
				secs, err := strconv.ParseInt(rest[0], 10, 64)
				if err != nil || secs < 0 {
					return fmt.Errorf("%q is not a number of seconds (or infinity)", rest[0])
				}
				// Beyond this a time.Duration wraps round, to a time in a few seconds.
				if maxSecs := int64(math.MaxInt64 / int64(time.Second)); secs > maxSecs {
					return fmt.Errorf("%d seconds is more than %d (about 292 years); for no termination time give infinity", secs, maxSecs)
				}
				at := time.Now().Add(time.Duration(secs) * time.Second)
				when = &at
			}
			got, current, err := soapClient().SetTerminationTime(cmd.Context(), epr, when)
			if err != nil {
				return err
			}
			if got == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "termination time: infinity (service time %s)\n", current.Format(time.RFC3339))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "termination time: %s (service time %s)\n", got.Format(time.RFC3339Nano), current.Format(time.RFC3339))
			}
			return nil
		},
	}
	t.register(cmd)
	return cmd
}

func wsrfDestroy() *cobra.Command {
	t := &targetOptions{}
	cmd := &cobra.Command{
		Use:   "destroy [key-value]",
		Short: "Destroy the resource",
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, rest, err := t.resolve(cmd, args)
			if err != nil {
				return err
			}
			if len(rest) != 0 {
				return fmt.Errorf("unexpected arguments %v", rest)
			}
			if err := soapClient().Destroy(cmd.Context(), epr); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "destroyed")
			return nil
		},
	}
	t.register(cmd)
	return cmd
}

// xpathQName finds the prefixes of names in an XPath expression (not an axis's "::",
// and not inside a string literal, which quotedRE takes out first).
var (
	quotedRE   = regexp.MustCompile(`"[^"]*"|'[^']*'`)
	xpathQName = regexp.MustCompile(`(^|[^A-Za-z0-9_.:-])([A-Za-z_][A-Za-z0-9_.-]*):([A-Za-z_*])`)
)

// unboundPrefix is a prefix expr uses that ns does not bind ("" none).
func unboundPrefix(expr string, ns map[string]string) string {
	for _, m := range xpathQName.FindAllStringSubmatch(quotedRE.ReplaceAllString(expr, `""`), -1) {
		if _, ok := ns[m[2]]; !ok {
			return m[2]
		}
	}
	return ""
}
