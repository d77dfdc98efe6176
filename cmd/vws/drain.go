package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// managerOf is the manager service args name (a base URL or a host name the
// Repository at --url knows), else the one at --url, as the command named what.
func managerOf(ctx context.Context, base string, args []string, what string) (*wsa.EPR, error) {
	if len(args) == 1 {
		return managerAt(ctx, base, args[0], "the URL argument of "+what)
	}
	return &wsa.EPR{Version: wsa.V200508, Address: baseURL(base) + managerPath}, nil
}

// setDraining updates the manager's mgr:Draining (SetResourceProperties, which
// policy grants site administrators).
func setDraining(ctx context.Context, mgr *wsa.EPR, on bool) error {
	d := client.DialectOf(mgr)
	body := etree.NewElement("wsrp:SetResourceProperties")
	body.CreateAttr("xmlns:wsrp", d.RP)
	v := body.CreateElement("wsrp:Update").CreateElement("mgr:Draining")
	v.CreateAttr("xmlns:mgr", vwsns.Manager)
	v.SetText(fmt.Sprint(on))
	_, err := soapClient().Invoke(ctx, mgr, "SetResourceProperties", body)
	return err
}

func newHostDrainCommand() *cobra.Command {
	var base string
	var off bool
	cmd := &cobra.Command{
		Use:   "drain [URL|HOST] [--off]",
		Short: "Take no new workspaces on a host (maintenance); --off ends it",
		Long: `Drain marks the manager's host as taking no new workspaces: a deploy there is
refused, and the Repository's placement passes the host over (it is told within a
second or two). What runs there runs on; vws host evacuate moves it away. The drain
outlives a restart of the manager, until vws host drain --off. It needs the site
administrator's right (policy class admin).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mgr, err := managerOf(cmd.Context(), base, args, "vws host drain")
			if err != nil {
				return err
			}
			if err := setDraining(cmd.Context(), mgr, !off); err != nil {
				return err
			}
			host := strings.TrimSuffix(mgr.Address, managerPath)
			if off {
				fmt.Fprintf(cmd.OutOrStdout(), "%s takes new workspaces again\n", host)
				return nil
			}
			held, err := deployedOn(cmd.Context(), mgr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s takes no new workspaces; %d deployed there run on (vws host evacuate %s moves them)\n", host, len(held), host)
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws: the manager when no URL or HOST is given, the repository that knows HOST (default $VWS_URL, else http://127.0.0.1:8080)")
	cmd.Flags().BoolVar(&off, "off", false, "end the drain: the host takes new workspaces again")
	return cmd
}

// hostWorkspace is one workspace a manager holds, as its host properties list it.
type hostWorkspace struct {
	key, name, state string
	deployment       string   // the manager's phase: staging, deployed, unstaging
	host             string   // the host name it was checked out under ("" from an older manager)
	ref              *wsa.EPR // at its Repository
}

// deployedOn lists the workspaces the manager holds (those the caller may see).
func deployedOn(ctx context.Context, mgr *wsa.EPR) ([]hostWorkspace, error) {
	els, err := soapClient().GetResourceProperty(ctx, mgr, wsa.QName{Space: vwsns.Manager, Local: "DeployedWorkspaces"})
	if err != nil {
		return nil, err
	}
	var out []hostWorkspace
	for _, d := range els {
		for _, w := range d.SelectElements("Workspace") {
			hw := hostWorkspace{key: txt(w, "Key"), name: dash(txt(w, "Name")), state: txt(w, "State"), deployment: txt(w, "Deployment")}
			if h := w.SelectElement("Host"); h != nil { // not from an older manager
				hw.host = strings.TrimSpace(h.Text())
			}
			if ref := w.SelectElement("WorkspaceReference"); ref != nil {
				if hw.ref, err = wsa.ParseEPR(ref); err != nil {
					return nil, fmt.Errorf("the manager's reference to workspace %s: %w", hw.key, err)
				}
			}
			out = append(out, hw)
		}
	}
	return out, nil
}

// dashList writes keys comma-separated, or "none".
func dashList(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

func newHostEvacuateCommand() *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "evacuate [URL|HOST]",
		Short: "Drain a host and move every workspace deployed there to other hosts",
		Long: `Evacuate drains the manager's host (vws host drain), then moves each workspace
deployed there as vws move does — a running guest serialized, undeployed, deployed
on the host the Repository places it on and restored there — one after the other,
and says what it could not move and why (a corrupted workspace, one between the
repository and the host, one no other host can take). It needs the right to manage
every workspace there: the site administrator's.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mgr, err := managerOf(cmd.Context(), base, args, "vws host evacuate")
			if err != nil {
				return err
			}
			if err := setDraining(cmd.Context(), mgr, true); err != nil {
				return err
			}
			wss, err := deployedOn(cmd.Context(), mgr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			host := strings.TrimSuffix(mgr.Address, managerPath)
			fmt.Fprintf(out, "%s drained; %d workspace(s) to move\n", host, len(wss))
			var left, waiting, moved []string
			for i, w := range wss {
				fmt.Fprintf(out, "\n%s (%s, %s):\n", w.key, w.name, w.state)
				if w.ref == nil {
					left = append(left, w.key+": the manager does not say where its repository is")
					continue
				}
				if w.deployment == "staging" || w.deployment == "unstaging" {
					// Its deploy (or hand-back) is under way here: the repository may
					// not know yet, and would call it in the repository, to deploy again.
					what := map[string]string{"staging": "a deploy", "unstaging": "a hand-back to the repository"}[w.deployment]
					fmt.Fprintf(cmd.ErrOrStderr(), "vws: %s not moved: %s of it is under way on this host\n", w.key, what)
					left = append(left, fmt.Sprintf("%s: %s of it is under way on this host; once vws status %s shows it finished, it can move", w.key, what, w.key))
					continue
				}
				w.ref.Version = mgr.Version
				err := moveOff(cmd, w.ref, base, w.key, "", "", w.host)
				if cmd.Context().Err() != nil {
					// Ctrl-C: stop, and say what is where rather than report the
					// cancelled moves as workspaces left on the host.
					rest := make([]string, 0, len(wss)-i-1)
					for _, r := range wss[i+1:] {
						rest = append(rest, r.key)
					}
					return &interruptedError{fmt.Sprintf("the evacuation was cancelled while moving %s, which may be on %s, on its new host or in the repository: vws status %s shows where; moved: %s; not tried, still on the host: %s; %s stays drained",
						w.key, host, w.key, dashList(moved), dashList(rest), host)}
				}
				var inRepo *inRepositoryError
				switch {
				case errors.As(err, &inRepo):
					fmt.Fprintf(cmd.ErrOrStderr(), "vws: %s not moved, and now in the repository: %v\n", w.key, describe(err))
					waiting = append(waiting, fmt.Sprintf("%s: %s (and back on this drained host: %s); %s puts it on a host", w.key, describe(err), describe(inRepo.back), inRepo.redeploy))
				case err != nil:
					fmt.Fprintf(cmd.ErrOrStderr(), "vws: %s not moved: %v\n", w.key, describe(err))
					left = append(left, w.key+": "+describe(err))
				default:
					moved = append(moved, w.key)
				}
			}
			var unmoved []string
			if len(left) > 0 {
				unmoved = append(unmoved, fmt.Sprintf("%d of %d workspace(s) are still on %s, which stays drained:\n  %s\nsee to each, then run vws host evacuate again",
					len(left), len(wss), host, strings.Join(left, "\n  ")))
			}
			if len(waiting) > 0 {
				unmoved = append(unmoved, fmt.Sprintf("%d of %d workspace(s) could be deployed neither on another host nor back here, and are in the repository:\n  %s",
					len(waiting), len(wss), strings.Join(waiting, "\n  ")))
			}
			if len(unmoved) > 0 {
				return refused("%s", strings.Join(unmoved, "\n"))
			}
			fmt.Fprintf(out, "\n%s holds no workspaces and stays drained (vws host drain --off %s ends it)\n", host, host)
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws: the manager when no URL or HOST is given, the repository that knows HOST (default $VWS_URL, else http://127.0.0.1:8080)")
	return cmd
}
