package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/manager"
)

const managerPath = "/wsrf/services/" + vwsns.ManagerService

// managerTarget says which manager a lifecycle command talks to: --host, else the
// manager the workspace's vw:managerReference names (where it is deployed).
type managerTarget struct {
	base string // --url: where the workspace EPR's key resolves
	host string // --host: a manager's base URL
	verb string // the command's name, for its advice
}

func (t *managerTarget) register(cmd *cobra.Command, hostHelp string) {
	t.verb = cmd.Name()
	cmd.Flags().StringVar(&t.base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&t.host, "host", "", hostHelp)
}

func (t *managerTarget) resolve(cmd *cobra.Command, arg string, deployed bool) (ws, mgr *wsa.EPR, err error) {
	ctx := cmd.Context()
	ws, err = workspaceEPR(cmd, t.base, arg)
	if err != nil {
		return nil, nil, err
	}
	if t.host != "" {
		mgr, err := managerAt(ctx, t.base, t.host, "--host")
		if err != nil {
			return nil, nil, err
		}
		mgr.Version = ws.Version
		return ws, mgr, nil
	}
	if deployed {
		els, err := soapClient().GetResourceProperty(ctx, ws, wsa.QName{Space: vwsns.Workspace, Local: "managerReference"})
		if err != nil {
			return nil, nil, err
		}
		if len(els) > 0 {
			if ref, err := wsa.ParseEPR(els[0]); err == nil {
				ref.Version = ws.Version
				noteAddress(ref.Address, "the manager address in the workspace's vw:managerReference (where it is deployed), or name a manager with --host")
				return ws, ref, nil
			}
		}
		return nil, nil, errors.New("the workspace is not deployed (it has no vw:managerReference): " + notDeployedAdvice(t.verb, arg))
	}
	return ws, &wsa.EPR{Version: ws.Version, Address: baseURL(t.base) + managerPath}, nil
}

// notDeployedAdvice is what to do about a workspace in the repository, for the
// command verb: one that stops a workspace has nothing to do, and deploying it
// first, as the others are told, would be no help.
func notDeployedAdvice(verb, arg string) string {
	const other = "if a manager still holds it, name that manager with --host"
	deploy := "vws deploy " + arg + " --state running deploys and starts it, or name the manager with --host"
	switch verb {
	case "undeploy":
		return "it is in the repository already, so there is nothing to undeploy; " + other
	case "shutdown":
		return "it runs nowhere, so there is nothing to shut down; " + other
	case "pause", "unpause":
		return "it runs nowhere, so there is nothing to " + verb + "; " + deploy
	case "console":
		return "it has a console once deployed: " + deploy
	}
	return "deploy it first: " + deploy
}

func mgrBody(local string, ws *wsa.EPR) *etree.Element {
	body := etree.NewElement("mgr:" + local)
	body.CreateAttr("xmlns:mgr", vwsns.Manager)
	ws.ChildElement(body, "mgr:WorkspaceReference", "wsa")
	return body
}

// timed prints how long a step took, so operators see where time goes.
func timed(cmd *cobra.Command, what string, start time.Time, state string) {
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%.2fs)\n", what, state, time.Since(start).Seconds())
}

func newDeployCommand() *cobra.Command {
	var t managerTarget
	var state string
	cmd := &cobra.Command{
		Use:   "deploy EPR|KEY [--host URL] [--state running]",
		Short: "Deploy a workspace onto a host's manager: check out, stage images, define the domain",
		Long: `Deploy asks a VW Manager to check the workspace out of the Repository, stage its
images (the base from the host's cache when present), define its domain and leave it in
--state: shutdown (default), running or paused. A serialized workspace deployed with
--state running continues where it stopped.

Without --host, the Repository places the workspace: of the hosts whose managers
announced themselves to it, the one that fits its description and already caches
most of its images, then has the most free memory (vws host list shows them). When
no host has announced itself, the manager at --url deploys it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkInitialState(state); err != nil {
				return err
			}
			ws, mgr, err := t.resolve(cmd, args[0], false)
			if err != nil {
				return err
			}
			placed := ""
			if t.host == "" {
				if mgr, placed, err = place(cmd, ws, mgr, state, false); err != nil {
					return err
				}
			}
			start := time.Now()
			resp, err := deployOn(cmd, mgr, ws, state, args[0])
			if err != nil {
				return err
			}
			if placed != "" {
				fmt.Fprintln(cmd.OutOrStdout(), placed)
			}
			timed(cmd, "deployed on "+txt(resp, "Host"), start, txt(resp, "State"))
			return nil
		},
	}
	t.register(cmd, "the host to deploy on: its manager's base URL, or its name as vws host list shows it (default: the host the Repository places it on)")
	cmd.Flags().StringVar(&state, "state", "", "state to leave the workspace in: shutdown, running or paused")
	return cmd
}

// deployOn asks the manager mgr to deploy ws and leave it in state, drawing staging
// progress meanwhile; arg is how the user named the workspace.
func deployOn(cmd *cobra.Command, mgr, ws *wsa.EPR, state, arg string) (*etree.Element, error) {
	body := mgrBody("Deploy", ws)
	if state != "" {
		body.CreateElement("mgr:InitialState").SetText(state)
	}
	stop := showStaging(cmd.Context(), mgr.Address, keyOfEPR(ws))
	resp, err := lifecycleClient().Invoke(cmd.Context(), mgr, "Deploy", body)
	stop()
	if err != nil && cmd.Context().Err() != nil {
		return nil, &interruptedError{fmt.Sprintf("the deploy was cancelled, and the manager undoes a deploy cut short; vws status %s shows where the workspace is", arg)}
	}
	return resp, err
}

func newPlaceCommand() *cobra.Command {
	var base, state string
	var move bool
	cmd := &cobra.Command{
		Use:   "place EPR|KEY [--state running] [--move]",
		Short: "Show where vws deploy would put a workspace, and why not elsewhere",
		Long: `Place asks the Repository which of the hosts announced to it could deploy the
workspace now, best first (those its creator preferred at Create, in that order, then
the most of its images cached, then the most free memory, then the fewest
workspaces), and why each other host could not. Nothing is deployed
or reserved: vws deploy without --host deploys on the first. With --move, a deployed
workspace's other hosts are ranked: where vws move would take it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := workspaceToLeaveIn(cmd, base, args[0], state)
			if err != nil {
				return err
			}
			if move {
				// Only a deployed workspace moves: say so as vws move does, rather than
				// rank it as a deploy.
				if _, err := whereDeployed(cmd, ws, args[0]); err != nil {
					return err
				}
			}
			resp, err := soapClient().Invoke(cmd.Context(), ws, "Place", placeBody(state, move))
			if err != nil {
				return err
			}
			// Written whole at the end, so that a standard output that cannot take it
			// (a full disk, a closed pipe) fails the command instead of exit 0.
			w := new(bytes.Buffer)
			cands, unfit := resp.SelectElements("Candidate"), resp.SelectElements("Unsuitable")
			if len(cands) == 0 && len(unfit) == 0 {
				fmt.Fprintln(w, "No host has announced itself to this repository: vws deploy would use the manager at --url.")
				return writeOut(cmd.OutOrStdout(), w, "the ranking")
			}
			if len(cands) > 0 {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "RANK\tHOST\tMANAGER\tCACHED\tTO STAGE\tFREE (MiB)\tDEPLOYED\tPREFERRED\tPROBLEM")
				for i, c := range cands {
					cached, _ := strconv.ParseInt(txt(c, "CachedBytes"), 10, 64)
					staged, _ := strconv.ParseInt(txt(c, "StagedBytes"), 10, 64)
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, txt(c, "HostName"), managerBase(c), formatBytes(cached), formatBytes(staged),
						txt(c, "MemoryFreeMiB"), txt(c, "DeployedWorkspaces"), txt(c, "Preferred"), txt(c, "Problem"))
				}
				tw.Flush()
			}
			if len(unfit) > 0 {
				if len(cands) > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintln(w, "Cannot deploy it now:")
				for _, u := range unfit {
					fmt.Fprintf(w, "  %s: %s\n", txt(u, "HostName"), txt(u, "Reason"))
				}
			}
			return writeOut(cmd.OutOrStdout(), w, "the ranking")
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&state, "state", "", "the state the deploy is to leave it in: to run it now, a host must have its networks started")
	cmd.Flags().BoolVar(&move, "move", false, "rank the hosts a deployed workspace could move to (vws move), not the one it is on")
	return cmd
}

// workspaceToLeaveIn is the workspace arg names (at base), once --state is one a
// deploy can leave it in.
func workspaceToLeaveIn(cmd *cobra.Command, base, arg, state string) (*wsa.EPR, error) {
	if err := checkInitialState(state); err != nil {
		return nil, err
	}
	return workspaceEPR(cmd, base, arg)
}

// checkInitialState refuses a --state a deploy cannot leave a workspace in.
func checkInitialState(state string) error {
	switch state {
	case "", "shutdown", "running", "paused":
		return nil
	}
	return fmt.Errorf("--state must be shutdown, running or paused, not %q", state)
}

// managerBase is the base URL of the manager whose reference el holds, or "-".
func managerBase(el *etree.Element) string {
	if ref := el.SelectElement("ManagerReference"); ref != nil {
		if epr, err := wsa.ParseEPR(ref); err == nil {
			return strings.TrimSuffix(epr.Address, managerPath)
		}
	}
	return "-"
}

// placeBody is a Place request; move asks where a deployed workspace could go.
func placeBody(state string, move bool) *etree.Element {
	body := etree.NewElement("vw:Place")
	body.CreateAttr("xmlns:vw", vwsns.Workspace)
	if state != "" {
		body.CreateElement("vw:InitialState").SetText(state)
	}
	if move {
		body.CreateElement("vw:Move").SetText("true")
	}
	return body
}

// place asks the Repository where to deploy ws (move: where to move it, off the host
// it is deployed on): the manager of its best candidate host and a line that says
// why, or fallback when no host has announced itself (a lone server, or one whose
// managers have not yet; without fallback, that is an error).
func place(cmd *cobra.Command, ws, fallback *wsa.EPR, state string, move bool) (*wsa.EPR, string, error) {
	resp, err := soapClient().Invoke(cmd.Context(), ws, "Place", placeBody(state, move))
	if err != nil {
		return nil, "", err
	}
	cands, unfit := resp.SelectElements("Candidate"), resp.SelectElements("Unsuitable")
	if len(cands) == 0 && len(unfit) == 0 && fallback == nil {
		return nil, "", errors.New("no host has announced itself to the repository (vws host list is empty): name the host with --host URL")
	}
	if len(cands) == 0 && len(unfit) == 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "vws: no host has announced itself to the repository; deploying on the manager at %s\n",
			strings.TrimSuffix(fallback.Address, managerPath))
		return fallback, "", nil
	}
	if len(cands) == 0 {
		var why strings.Builder
		for _, u := range unfit {
			fmt.Fprintf(&why, "\n  %s: %s", txt(u, "HostName"), txt(u, "Reason"))
		}
		return nil, "", refused("no host the repository knows can deploy this workspace now:%s\n"+
			"free what the reasons name, or name a host of your choice with --host URL", why.String())
	}
	best := cands[0]
	ref := best.SelectElement("ManagerReference")
	if ref == nil {
		return nil, "", errors.New("the repository's placement names a host without its manager's reference")
	}
	mgr, err := wsa.ParseEPR(ref)
	if err != nil {
		return nil, "", fmt.Errorf("the repository's placement: %w", err)
	}
	mgr.Version = ws.Version
	noteAddress(mgr.Address, "the manager address the repository placed the workspace on, or name one with --host")
	cached, _ := strconv.ParseInt(txt(best, "CachedBytes"), 10, 64)
	staged, _ := strconv.ParseInt(txt(best, "StagedBytes"), 10, 64)
	preferred := ""
	if p := txt(best, "Preferred"); p != "-" {
		preferred = ", " + p // the Repository's words: "preferred by the workspace's creator"
	}
	why := fmt.Sprintf("placed on %s%s: %s of its images cached there, %s to stage; %s MiB free; %d other host(s) fit, %d do not",
		txt(best, "HostName"), preferred, formatBytes(cached), formatBytes(staged), dash(txt(best, "MemoryFreeMiB")), len(cands)-1, len(unfit))
	if p := txt(best, "Problem"); p != "-" {
		why = fmt.Sprintf("placed on %s, the only choice left, though its manager could not read its hypervisor when it announced itself: %s", txt(best, "HostName"), p)
	}
	return mgr, why, nil
}

// showStaging draws a progress bar from the manager's staging progress while a
// deploy is in flight (on a terminal only). It asks with the CLI's credentials, as
// the deploy does: a manager over mutual TLS answers no one else, and its host
// certificate is the site CAs' to vouch for, not the system's.
func showStaging(ctx context.Context, managerAddr, key string) func() {
	hc, err := httpClient()
	if err != nil || !term.IsTerminal(int(os.Stderr.Fd())) || key == "" {
		return func() {}
	}
	url := strings.TrimSuffix(managerAddr, managerPath) + "/manager/staging/" + key
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var bar *progressbar.ProgressBar
		for {
			select {
			case <-ctx.Done():
				if bar != nil {
					bar.Finish()
				}
				return
			case <-time.After(200 * time.Millisecond):
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := hc.Do(req)
			if err != nil {
				continue
			}
			var p struct{ Done, Total int64 }
			if resp.StatusCode == http.StatusOK {
				json.NewDecoder(resp.Body).Decode(&p)
			}
			resp.Body.Close()
			if p.Total <= 0 {
				continue
			}
			if bar == nil {
				bar = progressbar.NewOptions64(p.Total, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetDescription("staging"), progressbar.OptionShowBytes(true),
					progressbar.OptionUseIECUnits(true), progressbar.OptionClearOnFinish())
			}
			bar.Set64(p.Done)
		}
	}()
	return func() { cancel(); <-done }
}

func keyOfEPR(e *wsa.EPR) string {
	if k := e.Reference(vwsns.Workspace, "WorkspaceKey"); k != nil {
		return strings.TrimSpace(k.Text())
	}
	return ""
}

// newLifecycleCommand makes start, pause, unpause and undeploy.
func newLifecycleCommand(op, short string) *cobra.Command {
	var t managerTarget
	cmd := &cobra.Command{
		Use:   strings.ToLower(op) + " EPR|KEY",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, mgr, err := t.resolve(cmd, args[0], true)
			if err != nil {
				return err
			}
			start := time.Now()
			resp, err := lifecycleClient().Invoke(cmd.Context(), mgr, op, mgrBody(op, ws))
			if err != nil {
				return err
			}
			state := txt(resp, "State")
			if d := txt(resp, "Deployment"); d != "" && d != "-" { // txt says "-" when absent
				state += ", " + d
			}
			timed(cmd, strings.ToLower(op), start, state)
			return nil
		},
	}
	t.register(cmd, "the manager: its base URL, or its host's name as vws host list shows it (default: the one the workspace is deployed on)")
	return cmd
}

func newShutdownCommand() *cobra.Command {
	var t managerTarget
	var mode string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "shutdown EPR|KEY [--mode normal|trash|serialize]",
		Short: "Stop a workspace: ACPI then forced (normal), discard changes (trash), or save its RAM (serialize)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			modes := map[string]string{"normal": "Normal", "trash": "Trash", "serialize": "Serialize"}
			m, ok := modes[strings.ToLower(mode)]
			if !ok {
				return fmt.Errorf("--mode must be normal, trash or serialize, not %q", mode)
			}
			if grace < 0 {
				return fmt.Errorf("--grace %s is negative: give how long to wait for the guest, e.g. 30s (or leave it out for the manager's default)", grace)
			}
			// The manager takes no zero grace and reads none sent as its default: a
			// --grace 0s left out would wait 30 s where the user asked for no wait.
			if grace == 0 && cmd.Flags().Changed("grace") {
				return fmt.Errorf("--grace 0s is no wait: give how long to wait for the guest, e.g. 30s, or 1s to force it off almost at once (or leave it out for the manager's default)")
			}
			// The manager waits for no guest in the other modes: a grace the user
			// counts on would pass unnoticed.
			if cmd.Flags().Changed("grace") && m != "Normal" {
				return fmt.Errorf("--grace goes with --mode normal: a %s shutdown does not wait for the guest (trash forces it off at once, serialize saves its RAM as it is); leave --grace out, or use --mode normal", strings.ToLower(m))
			}
			ws, mgr, err := t.resolve(cmd, args[0], true)
			if err != nil {
				return err
			}
			body := mgrBody("Shutdown", ws)
			body.CreateElement("mgr:Mode").SetText(m)
			if grace > 0 {
				// Never an exponent (%g writes 1e+06 past a million seconds), which xs:duration has not.
				body.CreateElement("mgr:GracePeriod").SetText("PT" + strconv.FormatFloat(grace.Seconds(), 'f', -1, 64) + "S")
			}
			start := time.Now()
			resp, err := lifecycleClient().Invoke(cmd.Context(), mgr, "Shutdown", body)
			if err != nil {
				return err
			}
			timed(cmd, "shutdown ("+strings.ToLower(mode)+")", start, txt(resp, "State"))
			return nil
		},
	}
	t.register(cmd, "the manager: its base URL, or its host's name as vws host list shows it (default: the one the workspace is deployed on)")
	cmd.Flags().StringVar(&mode, "mode", "normal", "normal, trash or serialize")
	cmd.Flags().DurationVar(&grace, "grace", 0, "how long a normal shutdown waits for the guest before forcing it off (default: the manager's)")
	return cmd
}

// stoppedFollowing is how Ctrl-C ends vws console -f: exit 130 like any other
// interrupted command (the exit codes in errors.go), not 0 as if it had finished.
var stoppedFollowing = &interruptedError{"stopped following the console; the workspace runs on"}

func newConsoleCommand() *cobra.Command {
	var t managerTarget
	var follow bool
	var tail int64
	cmd := &cobra.Command{
		Use:   "console EPR|KEY",
		Short: "Print a deployed workspace's serial console",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 {
				return fmt.Errorf("--tail %d is negative: give how many bytes before the end to start at, e.g. --tail 2000", tail)
			}
			ws, mgr, err := t.resolve(cmd, args[0], true)
			if err != nil {
				return err
			}
			offset := int64(0)
			if tail > 0 {
				// One byte more than asked: the byte before the tail says whether
				// its first line is whole.
				offset = -tail - 1
			}
			f, ok := cmd.OutOrStdout().(*os.File)
			terminal := ok && term.IsTerminal(int(f.Fd()))
			for first := true; ; first = false {
				body := mgrBody("Console", ws)
				body.CreateElement("mgr:Offset").SetText(strconv.FormatInt(offset, 10))
				resp, err := soapClient().Invoke(cmd.Context(), mgr, "Console", body)
				if err != nil && follow && cmd.Context().Err() != nil {
					return stoppedFollowing
				}
				if err != nil {
					return err
				}
				data, err := base64.StdEncoding.DecodeString(txt(resp, "Text"))
				if err != nil {
					return fmt.Errorf("the manager sent undecodable console text: %w", err)
				}
				from, _ := strconv.ParseInt(txt(resp, "Offset"), 10, 64)
				if offset >= 0 && from > offset {
					fmt.Fprintf(cmd.ErrOrStderr(), "vws: %d bytes of console output before this were rotated away (virtlogd keeps max_backups files of max_size)\n", from-offset)
				}
				if offset < 0 && txt(resp, "Offset") != "0" && int64(len(data)) == -offset {
					// A tail starts mid-line: show whole lines only. Past the extra
					// byte, a tail that starts a line is kept whole. (Fewer bytes: the
					// console's start was rotated away, and all that is kept came.)
					if i := bytes.IndexByte(data, '\n'); i >= 0 {
						data = data[i+1:]
					} else if len(data) > 0 {
						data = data[1:]
					}
				}
				// Standard output is often a file: one that could not be written (a
				// full disk) does not hold the console, and exit 0 would say it does.
				if terminal {
					data = terminalText(data)
				}
				if _, err := cmd.OutOrStdout().Write(data); err != nil {
					return fmt.Errorf("write the console output: %w; free space where it goes, or send it elsewhere", err)
				}
				size, _ := strconv.ParseInt(txt(resp, "Size"), 10, 64)
				if first && size == 0 {
					// Silence would look like a hung command or a broken console.
					fmt.Fprintln(cmd.ErrOrStderr(), "(no console output yet)")
				}
				switch {
				case size > offset || offset < 0:
					offset = size
					// Read on at once only after a full answer (an absent MaxBytes asks
					// for the most, manager.MaxConsoleRead): a shorter one reached the
					// end, and a guest writing between every two answers would otherwise
					// keep the command going for ever without --follow. With it, a
					// pause here would let a fast guest outrun the follower.
					if size-from >= manager.MaxConsoleRead {
						continue // more than one answer's worth
					}
				case size < offset:
					offset = 0 // the console started over (deployed anew): the new one from its start
					if follow {
						continue
					}
				}
				if !follow {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return stoppedFollowing
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	t.register(cmd, "the manager: its base URL, or its host's name as vws host list shows it (default: the one the workspace is deployed on)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the guest writes")
	cmd.Flags().Int64Var(&tail, "tail", 0, "start this many bytes before the end")
	return cmd
}

// sgrRE is a Select Graphic Rendition sequence (colours, bold): the one escape
// sequence a console shown on a terminal keeps.
var sgrRE = regexp.MustCompile(`^\x1b\[[0-9;]*m`)

// terminalText is console output as the viewer's terminal may be given it: text,
// line ends, tabs and colours as they are; any other control character, and so any
// other escape sequence, written out (\x1b, \u009b); bytes that are not UTF-8 as
// U+FFFD. The guest is not the viewer's (a site administrator may be inspecting a
// user's workspace): its output must not move the cursor up and erase the lines
// above, retitle the window, write the clipboard (OSC 52) or query the terminal so
// that its answer lands in the viewer's shell. A sequence split between two answers
// is shown written out, never passed on.
func terminalText(data []byte) []byte {
	out := make([]byte, 0, len(data))
	for len(data) > 0 {
		if m := sgrRE.Find(data); m != nil {
			out, data = append(out, m...), data[len(m):]
			continue
		}
		r, n := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && n == 1:
			out = utf8.AppendRune(out, utf8.RuneError)
		case r == '\n' || r == '\r' || r == '\t':
			out = append(out, data[0])
		case r < 0x20 || r == 0x7f:
			out = fmt.Appendf(out, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0: // C1 controls: a CSI or OSC in one code point
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, data[:n]...)
		}
		data = data[n:]
	}
	return out
}

func newHostCommand() *cobra.Command {
	host := &cobra.Command{Use: "host", Short: "Inspect host managers; drain and evacuate a host for maintenance"}
	var base string
	status := &cobra.Command{
		Use:   "status [URL|HOST]",
		Short: "Show a manager's host: hypervisor, capacity, deployed workspaces, cached images",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			epr, err := managerOf(cmd.Context(), base, args, "vws host status")
			if err != nil {
				return err
			}
			resp, err := soapClient().QueryResourceProperties(cmd.Context(), epr, "/*", nil)
			if err != nil {
				return err
			}
			return printHost(cmd.OutOrStdout(), resp)
		},
	}
	status.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	var listBase string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the hosts whose managers announced themselves to the Repository",
		Long: `List shows the hosts the Repository places workspaces on: every host whose manager
announced itself (at start, after each change, and every minute) and has not gone
quiet for longer than its announcement is valid.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			epr := &wsa.EPR{Version: wsa.V200508, Address: baseURL(listBase) + "/wsrf/services/" + vwsns.RepositoryService}
			props, err := soapClient().GetMultipleResourceProperties(cmd.Context(), epr,
				[]wsa.QName{{Space: vwsns.Repository, Local: "KnownHost"}, {Space: vwsns.Repository, Local: "SilentHost"}})
			if err != nil {
				return err
			}
			var known, silent []*etree.Element
			for _, p := range props {
				if p.Tag == "SilentHost" {
					silent = append(silent, p)
				} else {
					known = append(known, p)
				}
			}
			w := cmd.OutOrStdout()
			if err := printKnownHosts(w, known); err != nil {
				return err
			}
			return printSilentHosts(w, silent)
		},
	}
	list.Flags().StringVar(&listBase, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	host.AddCommand(status, list, newHostDrainCommand(), newHostEvacuateCommand())
	return host
}

// ago is an xs:dateTime as how long ago it was, or as it is when it does not parse.
func ago(ts string) string {
	if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
		return time.Since(t).Round(time.Second).String() + " ago"
	}
	return ts
}

// printSilentHosts lists the hosts that stopped announcing themselves, if any.
func printSilentHosts(w io.Writer, hosts []*etree.Element) error {
	if len(hosts) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nSilent (no announcement since; their workspaces say vw:hostSilentSince):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tLAST SEEN\tDEPLOYED THERE")
	for _, h := range hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", txt(h, "HostName"), ago(txt(h, "LastSeen")), txt(h, "DeployedWorkspaces"))
	}
	return tw.Flush()
}

func printKnownHosts(w io.Writer, hosts []*etree.Element) error {
	if len(hosts) == 0 {
		_, err := fmt.Fprintln(w, "No host has announced itself to this repository (managers announce at start and every minute).")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tMANAGER\tTYPE\tCPUS\tFREE (MiB)\tDEPLOYED\tCACHED IMAGES\tLAST SEEN\tPROBLEM")
	for _, h := range hosts {
		addr := managerBase(h)
		seen := ago(txt(h, "LastSeen"))
		typ := dash(txt(h, "DomainType"))
		if a := txt(h, "Architecture"); a != "-" {
			typ += "/" + a
		}
		problem := dash(txt(h, "Problem"))
		if txt(h, "Draining") == "true" {
			problem = strings.TrimPrefix(problem+"; draining (no new workspaces)", "-; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", txt(h, "HostName"), addr, typ, dash(txt(h, "CPUs")), dash(txt(h, "MemoryFreeMiB")),
			txt(h, "DeployedWorkspaces"), len(h.SelectElements("CachedImage")), seen, problem)
	}
	return tw.Flush()
}

func printHost(out io.Writer, resp *etree.Element) error {
	w := new(bytes.Buffer) // written whole at the end, as place's ranking is
	doc := resp
	if len(resp.ChildElements()) == 1 && len(resp.ChildElements()[0].ChildElements()) > 0 {
		doc = resp.ChildElements()[0]
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range []string{"VMMType", "VMMVersion", "DomainType", "Architecture", "CPUs", "MemoryTotal", "MemoryFree"} {
		v := dash(txt(doc, f))
		if strings.HasPrefix(f, "Memory") && v != "-" {
			v += " MiB" // the properties count MiB (mgr:HostMiB)
		}
		fmt.Fprintf(tw, "%s:\t%s\n", f, v)
	}
	tw.Flush()
	if txt(doc, "Draining") == "true" {
		fmt.Fprintln(w, "\nDraining: no new workspaces are deployed here (vws host drain --off ends it)")
	}
	if p := doc.SelectElement("HypervisorProblem"); p != nil {
		fmt.Fprintf(w, "\nThe hypervisor cannot be read: %s\n", strings.TrimSpace(p.Text()))
	}
	if d := doc.SelectElement("DeployedWorkspaces"); d != nil {
		fmt.Fprintln(w, "\nDeployed workspaces:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tNAME\tSTATE\tDEPLOYMENT\tMEMORY (MiB)\tDETAIL")
		for _, ws := range d.SelectElements("Workspace") {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", txt(ws, "Key"), dash(txt(ws, "Name")), txt(ws, "State"), txt(ws, "Deployment"),
				dash(txt(ws, "MemoryMiB")), dash(txt(ws, "Detail")))
		}
		tw.Flush()
	}
	if c := doc.SelectElement("CachedImages"); c != nil {
		fmt.Fprintln(w, "\nCached images:")
		for _, img := range c.SelectElements("Image") {
			n, _ := strconv.ParseInt(txt(img, "SizeBytes"), 10, 64)
			fmt.Fprintf(w, "  %s  %s\n", shortDigest(txt(img, "Digest")), formatBytes(n))
		}
	}
	if c := doc.SelectElement("Networks"); c != nil {
		var networks, bridges []string
		for _, n := range c.SelectElements("Network") {
			if txt(n, "Kind") == "bridge" {
				bridges = append(bridges, txt(n, "Name"))
				continue
			}
			state := "started"
			if txt(n, "Active") != "true" {
				state = "not started (virsh net-start " + txt(n, "Name") + ")"
			}
			networks = append(networks, txt(n, "Name")+"  "+state)
		}
		if c.SelectAttrValue("libvirtNetworksUnknown", "") == "true" {
			fmt.Fprintln(w, "\nNetworks (libvirt): could not be listed")
		} else {
			fmt.Fprintln(w, "\nNetworks (libvirt):")
		}
		for _, n := range networks {
			fmt.Fprintf(w, "  %s\n", n)
		}
		fmt.Fprintln(w, "\nBridges guests may join (vws serve --bridge):")
		if len(bridges) == 0 {
			fmt.Fprintln(w, "  none")
		}
		for _, b := range bridges {
			fmt.Fprintf(w, "  %s\n", b)
		}
	}
	return writeOut(out, w, "the host's status")
}

// writeOut writes buf, all a command shows, to out: one that cannot take it (a full
// disk, a closed pipe) fails the command, as exit 0 would say it was shown.
func writeOut(out io.Writer, buf *bytes.Buffer, what string) error {
	if _, err := out.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s to standard output: %w; free space where it goes, or send it elsewhere", what, err)
	}
	return nil
}
