package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// workspaceEPR reads an EPR argument: an EPR file, "-" for an EPR document on
// standard input, or a bare workspace key. Whatever exists under that name is read
// as a file; a name that does not, and looks like a path (a / or a .), is a missing
// file rather than a key.
func workspaceEPR(cmd *cobra.Command, base, arg string) (*wsa.EPR, error) {
	const hint = "give the EPR file vws create -o wrote (or - and the EPR on standard input), or the workspace's key (vws list shows them)"
	if _, err := os.Stat(arg); err == nil || strings.ContainsAny(arg, "/.") || arg == "-" {
		src := "EPR file " + arg
		if arg == "-" {
			src = "the EPR on standard input"
		}
		epr, err := readEPRFile(cmd.InOrStdin(), arg, hint)
		if err != nil {
			return nil, err
		}
		if k := epr.Reference(vwsns.Workspace, "WorkspaceKey"); k == nil || strings.TrimSpace(k.Text()) == "" {
			return nil, fmt.Errorf("%s names no workspace (it has no vw:WorkspaceKey reference parameter, or an empty one); %s", src, hint)
		}
		// A Factory's or Manager's address with a workspace key would reach a
		// service that reads the key differently (or not at all): its answers
		// mislead, or worse, succeed on the wrong resource.
		if u, err := url.Parse(strings.TrimSpace(epr.Address)); err == nil && path.Base(u.Path) != vwsns.WorkspaceService {
			return nil, fmt.Errorf("%s is not a workspace's: its address is %s, a workspace's ends in /wsrf/services/%s; %s", src, epr.Address, vwsns.WorkspaceService, hint)
		}
		noteAddress(epr.Address, "the address in "+src)
		// The EPR names where its workspace is, as GT tools read it: a --url that
		// differs is not used for it, and the user who gave one should know.
		if base != "" && !sameAddress(epr.Address, baseURL(base)+"/wsrf/services/"+vwsns.WorkspaceService) {
			fmt.Fprintf(cmd.ErrOrStderr(), "vws: note: the workspace is reached at the address in %s, %s, not under --url %s\n", src, strings.TrimSpace(epr.Address), base)
		}
		return epr, nil
	}
	if strings.TrimSpace(arg) == "" {
		return nil, errors.New("the EPR|KEY argument is empty; " + hint)
	}
	k := etree.NewElement("vw:WorkspaceKey")
	k.CreateAttr("xmlns:vw", vwsns.Workspace)
	k.SetText(arg)
	return &wsa.EPR{Version: wsa.V200508, Address: baseURL(base) + "/wsrf/services/" + vwsns.WorkspaceService, References: []*etree.Element{k}}, nil
}

// sameAddress says whether a and b are one service address (as addressKey has it:
// scheme and host in any case, a default port written or not, no trailing /).
func sameAddress(a, b string) bool {
	ua, erra := url.Parse(strings.TrimSpace(a))
	ub, errb := url.Parse(strings.TrimSpace(b))
	if erra != nil || errb != nil {
		return strings.TrimSpace(a) == strings.TrimSpace(b)
	}
	return addressKey(ua) == addressKey(ub)
}

// eprOutput is where -o saves a new workspace's EPR. It is made ready before the
// workspace is, so that a path that cannot be written fails the command before a
// workspace exists that nobody would be told of.
type eprOutput struct {
	path string
	tmp  *os.File // in path's directory, renamed over path once written
}

// An existing file is replaced only with force, and never when it is one of inputs
// (the command's -f file, or the EPR file of the workspace it clones): an EPR file is
// often the only handle a user keeps on a workspace.
func prepareEPROutput(path string, force bool, inputs ...string) (*eprOutput, error) {
	if path == "" {
		return &eprOutput{}, nil
	}
	// To most tools "-" is standard output: here it would be a file of that name,
	// which the user would not look for.
	if path == "-" {
		return nil, errors.New("-o - would write the EPR to a file named \"-\", not to standard output (where the key goes): give a file name, e.g. -o ws.xml; nothing was created")
	}
	// A directory cannot be renamed over, and its parent is not where the user
	// looks for the temporary file: refuse it (or a name ending in /) here.
	fi, err := os.Stat(path)
	if (err == nil && fi.IsDir()) || strings.HasSuffix(path, string(filepath.Separator)) {
		return nil, fmt.Errorf("-o %s is a directory: give a file name for the EPR, e.g. %s; nothing was created", path, filepath.Join(path, "ws.xml"))
	}
	if err == nil {
		for _, in := range inputs {
			if ifi, ierr := os.Stat(in); ierr == nil && os.SameFile(fi, ifi) {
				return nil, fmt.Errorf("-o %s is the file this command reads (%s): writing the new EPR there would lose it; give another file name; nothing was created", path, in)
			}
		}
		if !force {
			return nil, fmt.Errorf("-o %s exists (the EPR of another workspace?): give another file name, or --force to replace it; nothing was created", path)
		}
	}
	path = filepath.Clean(path)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("-o %s: cannot write there (%w): give a file in a directory you can write; nothing was created", path, err)
	}
	return &eprOutput{path: path, tmp: tmp}, nil
}

// discard removes what prepareEPROutput made, if the EPR was not saved.
func (o *eprOutput) discard() {
	if o.tmp != nil {
		o.tmp.Close()
		os.Remove(o.tmp.Name())
	}
}

// save writes epr to o's file, if any, and prints its key.
func (o *eprOutput) save(cmd *cobra.Command, epr *wsa.EPR) error {
	key := ""
	if k := epr.Reference(vwsns.Workspace, "WorkspaceKey"); k != nil {
		key = strings.TrimSpace(k.Text())
	}
	// Standard output is often a file a script keeps the key in: one that could not
	// be written (a full disk) holds no handle on the new workspace, and exit 0
	// would say it does.
	_, perr := fmt.Fprintln(cmd.OutOrStdout(), key)
	if o.tmp == nil {
		if perr != nil {
			return fmt.Errorf("print the key: %w; workspace %s exists: the other commands take this key, and vws destroy %s removes it", perr, key, key)
		}
		return nil
	}
	_, err := epr.Document().WriteTo(o.tmp)
	if cerr := o.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(o.tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(o.tmp.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.tmp.Name())
		return fmt.Errorf("write EPR to %s: %w; workspace %s exists: the other commands take its key, and vws destroy %s removes it", o.path, err, key, key)
	}
	if perr != nil {
		return fmt.Errorf("print the key: %w; workspace %s exists, its EPR is in %s", perr, key, o.path)
	}
	return nil
}

// checkLifetime refuses a --lifetime the service would refuse, in the flag's terms:
// zero (changed: given; sent as nothing, it would be the site's default), negative,
// or beyond the longest duration a request may name (a site's own maximum, shorter,
// clamps what lies between).
func checkLifetime(lifetime time.Duration, changed bool, what string) error {
	switch {
	case lifetime == 0 && changed:
		return fmt.Errorf("--lifetime 0s is no lifetime: give how long the %s should live, e.g. 2h (or leave it out for the site's default)", what)
	case lifetime < 0:
		return fmt.Errorf("--lifetime %s is negative: give how long the %s should live, e.g. 2h (or leave it out for the site's default)", lifetime, what)
	case lifetime > wsrf.MaxDuration:
		return fmt.Errorf("--lifetime %s is more than 100 years: give how long the %s should live, e.g. 720h (a site shortens what is beyond its maximum)", lifetime, what)
	}
	return nil
}

// checkName refuses a --name given empty (a script's unset variable): the service
// refuses an empty name, and one left out is generated, so sent as nothing it would
// name the workspace without a word.
func checkName(cmd *cobra.Command, name, what string) error {
	if name == "" && cmd.Flags().Changed("name") {
		return fmt.Errorf("--name is empty: give the %s a name (1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit), or leave --name out for a generated one; nothing was created", what)
	}
	return nil
}

func newCreateCommand() *cobra.Command {
	var base, file, image, name, out string
	var force bool
	var memory, cpus int
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "create (-f DESCRIPTION.xml | --image NAME) [flags]",
		Short: "Create a workspace from a description file, or from an image and a few flags",
		Long: `Create a workspace through the Factory. Either give a workspace description
(-f, the XML schema in schema/vws/workspace.xsd), or name a pool image with --image and
let vws write the description from --memory and --cpus. Prints the new workspace's key;
-o also saves its EPR for the other commands and for GT-style tools.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkLifetime(lifetime, cmd.Flags().Changed("lifetime"), "workspace"); err != nil {
				return err
			}
			if err := checkName(cmd, name, "workspace"); err != nil {
				return err
			}
			var desc *etree.Element
			switch {
			case file != "" && image != "":
				return fmt.Errorf("give either -f or --image, not both")
			case file != "" && (cmd.Flags().Changed("memory") || cmd.Flags().Changed("cpus")):
				return fmt.Errorf("--memory and --cpus go with --image; with -f the description says how much (hw:RAM, hw:CPU): change the file, or use --image")
			case file != "":
				var err error
				if desc, err = readXMLFile("-f", file, "a workspace description (schema/vws/workspace.xsd), or use --image NAME"); err != nil {
					return err
				}
				// The file -o wrote is easily taken for the one -f wants; the
				// Factory's schema fault would not say so.
				if desc.Tag == "EndpointReference" {
					return fmt.Errorf("-f %s is an endpoint reference, not a workspace description: give a description (schema/vws/workspace.xsd), or use --image NAME; vws clone %s copies the workspace it names", file, file)
				}
				// Nor would it say that the file's namespace is missing: it names
				// {}virtualWorkspace an element Create does not hold.
				if desc.Tag != "virtualWorkspace" || desc.NamespaceURI() != vwsns.Workspace {
					return fmt.Errorf("-f %s is not a workspace description: %s; its root must be vw:virtualWorkspace with xmlns:vw=%q (schema/vws/workspace.xsd), or use --image NAME",
						file, describeRoot(desc), vwsns.Workspace)
				}
			case image != "":
				// The schema's bounds (hardware.xsd), said in the flags' terms.
				if memory < 16 || memory > 4<<20 {
					return fmt.Errorf("--memory %d: give the memory in MiB, from 16 to 4194304 (4 TiB)", memory)
				}
				if cpus < 1 || cpus > 512 {
					return fmt.Errorf("--cpus %d: give from 1 to 512 virtual CPUs", cpus)
				}
				desc = describeFromFlags(image, memory, cpus)
			default:
				return fmt.Errorf("give a description with -f FILE, or an image with --image NAME")
			}
			output, err := prepareEPROutput(out, force, file)
			if err != nil {
				return err
			}
			defer output.discard()
			body := etree.NewElement("fac:Create")
			body.CreateAttr("xmlns:fac", vwsns.Factory)
			body.AddChild(wsa.Detach(desc))
			if name != "" {
				body.CreateElement("fac:Name").SetText(name)
			}
			if lifetime != 0 {
				body.CreateElement("fac:RequestedLifetime").SetText(wsrf.FormatDuration(lifetime))
			}
			factory := &wsa.EPR{Version: wsa.V200508, Address: baseURL(base) + "/wsrf/services/" + vwsns.FactoryService}
			resp, err := soapClient().Invoke(cmd.Context(), factory, "Create", body)
			if err != nil && cmd.Context().Err() != nil {
				return interruptedNew("create", name, out)
			}
			if err != nil {
				return err
			}
			ref := resp.SelectElement("WorkspaceReference")
			if ref == nil {
				return fmt.Errorf("the Factory's answer has no WorkspaceReference")
			}
			epr, err := wsa.ParseEPR(ref)
			if err != nil {
				return err
			}
			printLifetime(cmd, resp)
			return output.save(cmd, epr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	f.StringVarP(&file, "file", "f", "", "workspace description (XML)")
	f.StringVar(&image, "image", "", "pool image to boot (instead of -f)")
	f.IntVar(&memory, "memory", 256, "memory in MiB (with --image)")
	f.IntVar(&cpus, "cpus", 1, "virtual CPUs (with --image)")
	f.StringVar(&name, "name", "", "workspace name (default: generated)")
	f.DurationVar(&lifetime, "lifetime", 0, "requested lifetime, e.g. 2h (default: the site's)")
	f.StringVarP(&out, "output", "o", "", "save the workspace's EPR to this file (a new one, unless --force)")
	f.BoolVar(&force, "force", false, "replace an existing -o file")
	return cmd
}

// interruptedNew says where to look for the workspace a create or clone cut short
// may still make: the user never saw its key, and -o's file was not written.
func interruptedNew(what, name, out string) error {
	msg := "the " + what + " was cancelled before the answer came, and the service may still make the workspace: "
	if name != "" {
		msg += fmt.Sprintf("vws list shows it, named %q, if it did", name)
	} else {
		msg += "vws list shows it, under a generated name, if it did"
	}
	msg += " (vws destroy KEY removes it)"
	if out != "" {
		msg += "; its EPR was not written to " + out
	}
	return &interruptedError{msg}
}

// printLifetime tells, on stderr, when a new workspace (created or cloned) ends,
// and whether the site shortened the lifetime asked for: otherwise a clamp would
// go unnoticed until the workspace is destroyed.
func printLifetime(cmd *cobra.Command, resp *etree.Element) {
	if c := resp.SelectElement("LifetimeClamped"); c != nil && strings.TrimSpace(c.Text()) == "true" {
		fmt.Fprintln(cmd.ErrOrStderr(), "note: the requested lifetime exceeded the site maximum and was shortened")
	}
	if t := resp.SelectElement("TerminationTime"); t != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "terminates at", strings.TrimSpace(t.Text()))
	}
}

// describeRoot says what a file's root element is, for a refusal.
func describeRoot(e *etree.Element) string {
	switch ns := e.NamespaceURI(); {
	case ns == "" && e.Space != "":
		return fmt.Sprintf("its root element %s uses prefix %q, which is not declared", e.FullTag(), e.Space)
	case ns == "":
		return fmt.Sprintf("its root element %s is in no namespace", e.Tag)
	default:
		return fmt.Sprintf("its root element is {%s}%s", ns, e.Tag)
	}
}

// describeFromFlags writes the description of a plain VM booting a pool image.
func describeFromFlags(image string, memory, cpus int) *etree.Element {
	d := etree.NewElement("vw:virtualWorkspace")
	d.CreateAttr("xmlns:vw", vwsns.Workspace)
	d.CreateAttr("xmlns:hw", vwsns.Hardware)
	d.CreateAttr("xmlns:sw", vwsns.Software)
	d.CreateElement("vw:category").SetText("vm")
	hw := d.CreateElement("hw:hardware")
	hw.CreateElement("hw:RAM").CreateElement("hw:size").SetText(strconv.Itoa(memory))
	hw.CreateElement("hw:CPU").CreateElement("hw:count").SetText(strconv.Itoa(cpus))
	d.CreateElement("sw:software").CreateElement("sw:image").CreateElement("sw:name").SetText(image)
	return d
}

func newListCommand() *cobra.Command {
	var base, owner string
	var states []string
	cmd := &cobra.Command{
		Use:   "list [--state S] [--owner DN]",
		Short: "List workspaces in the repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range states {
				if !listStates[s] {
					return fmt.Errorf("--state %q is not a workspace state: give shutdown, paused, running or corrupted", s)
				}
			}
			body := etree.NewElement("repo:ListWorkspaces")
			body.CreateAttr("xmlns:repo", vwsns.Repository)
			for _, s := range states {
				body.CreateElement("repo:State").SetText(s)
			}
			if owner != "" {
				body.CreateElement("repo:Owner").SetText(owner)
			}
			repo := &wsa.EPR{Version: wsa.V200508, Address: baseURL(base) + "/wsrf/services/" + vwsns.RepositoryService}
			resp, err := soapClient().Invoke(cmd.Context(), repo, "ListWorkspaces", body)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tNAME\tSTATE\tDEPLOYMENT\tOWNER\tTERMINATES")
			for _, w := range resp.SelectElements("Workspace") {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", txt(w, "Key"), txt(w, "Name"), txt(w, "State"),
					txt(w, "Deployment"), txt(w, "Owner"), txt(w, "TerminationTime"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only workspaces in these states (shutdown, paused, running, corrupted)")
	cmd.Flags().StringVar(&owner, "owner", "", "only workspaces of this owner DN")
	return cmd
}

// listStates are the states a workspace is listed in.
var listStates = map[string]bool{"shutdown": true, "paused": true, "running": true, "corrupted": true}

func txt(e *etree.Element, child string) string {
	if c := e.SelectElement(child); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return "-"
}

func newStatusCommand() *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "status EPR|KEY",
		Short: "Show a workspace's resource-property document",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, err := workspaceEPR(cmd, base, args[0])
			if err != nil {
				return err
			}
			resp, err := soapClient().QueryResourceProperties(cmd.Context(), epr, "/*", nil)
			if err != nil {
				return err
			}
			return printElements(cmd.OutOrStdout(), resp.ChildElements())
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	return cmd
}

func newCloneCommand() *cobra.Command {
	var base, name, out string
	var force bool
	var lifetime time.Duration
	cmd := &cobra.Command{
		Use:   "clone EPR|KEY [--name NAME] [-o epr.xml]",
		Short: "Copy a workspace (copy-on-write) under a new name",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkLifetime(lifetime, cmd.Flags().Changed("lifetime"), "clone"); err != nil {
				return err
			}
			if err := checkName(cmd, name, "clone"); err != nil {
				return err
			}
			epr, err := workspaceEPR(cmd, base, args[0])
			if err != nil {
				return err
			}
			output, err := prepareEPROutput(out, force, args[0])
			if err != nil {
				return err
			}
			defer output.discard()
			body := etree.NewElement("vw:Clone")
			body.CreateAttr("xmlns:vw", vwsns.Workspace)
			if name != "" {
				body.CreateElement("vw:Name").SetText(name)
			}
			if lifetime != 0 {
				body.CreateElement("vw:RequestedLifetime").SetText(wsrf.FormatDuration(lifetime))
			}
			resp, err := soapClient().Invoke(cmd.Context(), epr, "Clone", body)
			if err != nil && cmd.Context().Err() != nil {
				return interruptedNew("clone", name, out)
			}
			if err != nil {
				return err
			}
			ref := resp.SelectElement("WorkspaceReference")
			if ref == nil {
				return fmt.Errorf("the answer has no WorkspaceReference")
			}
			cloneEPR, err := wsa.ParseEPR(ref)
			if err != nil {
				return err
			}
			printLifetime(cmd, resp)
			return output.save(cmd, cloneEPR)
		},
	}
	f := cmd.Flags()
	f.StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	f.StringVar(&name, "name", "", "the clone's name (default: generated)")
	f.DurationVar(&lifetime, "lifetime", 0, "the clone's lifetime (default: the site's)")
	f.StringVarP(&out, "output", "o", "", "save the clone's EPR to this file (a new one, unless --force)")
	f.BoolVar(&force, "force", false, "replace an existing -o file")
	return cmd
}

func newDestroyCommand() *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "destroy EPR|KEY",
		Short: "Destroy a workspace: its image and metadata are removed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, err := workspaceEPR(cmd, base, args[0])
			if err != nil {
				return err
			}
			if err := soapClient().Destroy(cmd.Context(), epr); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "destroyed")
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	return cmd
}
