package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

func newMoveCommand() *cobra.Command {
	var base, host, state string
	cmd := &cobra.Command{
		Use:   "move EPR|KEY [--host URL|HOST] [--state running|paused|shutdown]",
		Short: "Move a deployed workspace to another host: serialize, undeploy, deploy there, resume",
		Long: `Move takes a deployed workspace to another host (cold migration): a running or
paused guest is serialized (its RAM saved), the workspace is undeployed with its
changes and memory image, then deployed on the new host, where it continues where
it stopped. It ends in the state it had (--state chooses another).

Without --host, the Repository picks the host as vws deploy does, among the hosts
other than the current one (vws place --move shows the ranking). Nothing is
stopped when no other host fits, or when the new host's manager does not answer.
If the deploy on the new host fails, the workspace is deployed back where it was.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := workspaceToLeaveIn(cmd, base, args[0], state)
			if err != nil {
				return err
			}
			return moveWorkspace(cmd, ws, base, args[0], host, state)
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	cmd.Flags().StringVar(&host, "host", "", "the host to move it to: its manager's base URL, or its name (default: the host the Repository places it on)")
	cmd.Flags().StringVar(&state, "state", "", "state to leave it in on the new host: running, paused or shutdown (default: the state it has now)")
	return cmd
}

// moveWorkspace moves ws (arg, as the user named it) to host's manager (a URL, or a
// host name the Repository at base knows), or where the Repository places it, and
// leaves it in state (default: as it is).
func moveWorkspace(cmd *cobra.Command, ws *wsa.EPR, base, arg, host, state string) error {
	return moveOff(cmd, ws, base, arg, host, state, "")
}

// moveOff is moveWorkspace for a workspace a manager lists as checked out under the
// host name off ("": wherever it is). One the repository has on another host was
// taken back from that one while it was silent and deployed again elsewhere: moving
// it would stop it on a host nobody named, so it is refused, untouched.
func moveOff(cmd *cobra.Command, ws *wsa.EPR, base, arg, host, state, off string) error {
	from, err := whereDeployed(cmd, ws, arg)
	if err != nil {
		return err
	}
	if off != "" && from.host != off {
		return fmt.Errorf("the repository has workspace %s on %s, not on %s: the manager of %s lists a copy it no longer holds, and removes it once it finds that out; nothing was stopped",
			arg, from.host, off, off)
	}
	stateChosen := state != ""
	if !stateChosen {
		state = from.state
	}
	// The destination is settled, and answers, before anything stops.
	var to *wsa.EPR
	why := ""
	if host != "" {
		if to, err = managerAt(cmd.Context(), base, host, "--host"); err != nil {
			return err
		}
		to.Version = ws.Version
		// The same manager spelled otherwise (host case, a trailing /, a default
		// port) is no other host: moving there would stop the workspace for nothing.
		if sameAddress(to.Address, from.manager.Address) {
			return fmt.Errorf("workspace %s is already deployed on %s (%s): name another host's manager with --host, or leave --host out to let the repository choose", arg, from.host, host)
		}
	} else if to, why, err = place(cmd, ws, nil, state, true); err != nil {
		return err
	}
	if err := probeManager(cmd, to); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if why != "" {
		fmt.Fprintln(out, strings.Replace(why, "placed on", "moving to", 1))
	}
	// Ctrl-C may cut the move short between any two steps: what the user is then
	// told names the commands that finish it, with the state it is to end in (run
	// again without --state, a move carries the workspace it serialized as a
	// serialized one, and a running job would stay stopped on the new host).
	toBase := strings.TrimSuffix(to.Address, managerPath)
	withState := func() string {
		if state == "" {
			return ""
		}
		return " --state " + state
	}
	begun := time.Now()
	serialized, err := stopForMove(cmd, ws, from)
	if err != nil && cmd.Context().Err() != nil {
		resume := ""
		if from.state == "running" {
			resume = fmt.Sprintf("vws start %s resumes it there, ", arg)
		}
		return &interruptedError{fmt.Sprintf("the move was cancelled while serializing workspace %s on %s: it is %s there still, or serialized (its RAM saved, its vCPUs stopped) if the manager finished: vws status %s shows which; %svws move %s --host %s%s finishes the move",
			arg, from.host, from.state, arg, resume, arg, toBase, withState())}
	}
	if err != nil {
		return err
	}
	if serialized && !stateChosen {
		// Serialized before the move: it stays so, its RAM in its memory image, not
		// restored paused into the new host's memory.
		state = ""
	}
	start := time.Now()
	if _, err := lifecycleClient().Invoke(cmd.Context(), from.manager, "Undeploy", mgrBody("Undeploy", ws)); err != nil {
		if cmd.Context().Err() != nil {
			return &interruptedError{fmt.Sprintf("the move was cancelled while undeploying workspace %s from %s: it is serialized there still, or in the repository if the manager finished: vws status %s shows which; vws move %s --host %s%s finishes the move from %s, vws deploy %s --host %s%s from the repository",
				arg, from.host, arg, arg, toBase, withState(), from.host, arg, toBase, withState())}
		}
		if !serialized && (from.state == "running" || from.state == "paused") {
			return resumeAfterFailedUndeploy(cmd, ws, from, arg, err)
		}
		return err
	}
	timed(cmd, "undeployed from "+from.host, start, "in the repository")
	start = time.Now()
	resp, err := deployOn(cmd, to, ws, state, arg)
	if err != nil && cmd.Context().Err() != nil {
		return &interruptedError{fmt.Sprintf("the move was cancelled while deploying workspace %s on %s: the manager undoes a deploy cut short, leaving it in the repository with its changes: vws status %s shows where it is; vws deploy %s --host %s%s finishes the move, --host %s puts it back",
			arg, toBase, arg, arg, toBase, withState(), strings.TrimSuffix(from.manager.Address, managerPath))}
	}
	if err != nil {
		return moveBack(cmd, ws, from, state, arg, err)
	}
	timed(cmd, "deployed on "+txt(resp, "Host"), start, txt(resp, "State"))
	fmt.Fprintf(out, "moved from %s to %s in %.2fs\n", from.host, txt(resp, "Host"), time.Since(begun).Seconds())
	return nil
}

// deployedAt is where a workspace to move is, and how.
type deployedAt struct {
	host    string
	manager *wsa.EPR
	state   string
}

// whereDeployed reads the workspace's host, manager and state, refusing a workspace
// that is not deployed, or not in a state a move can carry.
func whereDeployed(cmd *cobra.Command, ws *wsa.EPR, arg string) (deployedAt, error) {
	q := func(local string) wsa.QName { return wsa.QName{Space: vwsns.Workspace, Local: local} }
	props, err := soapClient().GetMultipleResourceProperties(cmd.Context(), ws, []wsa.QName{q("state"), q("deployment"), q("host"), q("managerReference")})
	if err != nil {
		return deployedAt{}, err
	}
	var at deployedAt
	deployment := ""
	for _, p := range props {
		switch p.Tag {
		case "state":
			at.state = strings.TrimSpace(p.Text())
		case "deployment":
			deployment = strings.TrimSpace(p.Text())
		case "host":
			at.host = strings.TrimSpace(p.Text())
		case "managerReference":
			if at.manager, err = wsa.ParseEPR(p); err != nil {
				return deployedAt{}, fmt.Errorf("the workspace's vw:managerReference: %w", err)
			}
			at.manager.Version = ws.Version
		}
	}
	switch {
	case deployment == "in-repository":
		return deployedAt{}, fmt.Errorf("workspace %s is in the repository, on no host: vws deploy %s puts it on one (with --state running, a serialized one continues where it stopped)", arg, arg)
	case deployment != "deployed" || at.manager == nil:
		return deployedAt{}, fmt.Errorf("workspace %s is %s, between the repository and a host: wait until vws status shows it deployed, then move it", arg, deployment)
	case at.state == "corrupted":
		return deployedAt{}, fmt.Errorf("workspace %s is corrupted on %s: vws status says why; vws shutdown --mode trash discards this deployment's changes, after which it can move", arg, at.host)
	}
	noteAddress(at.manager.Address, "the manager address in the workspace's vw:managerReference (where it is deployed)")
	return at, nil
}

// probeManager asks the destination's manager for its domain type before anything
// stops, so that a manager that is down, or an address that is none, costs nothing.
func probeManager(cmd *cobra.Command, mgr *wsa.EPR) error {
	_, err := soapClient().GetResourceProperty(cmd.Context(), mgr, wsa.QName{Space: vwsns.Manager, Local: "DomainType"})
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "vws: the manager to move the workspace to does not answer; nothing was stopped")
	}
	return err
}

// stopForMove serializes a running or paused workspace, so that its RAM travels
// with it; one serialized already (which it says), or shut down, has nothing to save.
func stopForMove(cmd *cobra.Command, ws *wsa.EPR, from deployedAt) (alreadySerialized bool, err error) {
	if from.state != "running" && from.state != "paused" {
		return false, nil
	}
	body := mgrBody("Shutdown", ws)
	body.CreateElement("mgr:Mode").SetText("Serialize")
	start := time.Now()
	_, err = lifecycleClient().Invoke(cmd.Context(), from.manager, "Shutdown", body)
	var fe *client.FaultError
	if from.state == "paused" && errors.As(err, &fe) && serializedAlready(fe) {
		return true, nil // paused by a serialize already: its memory image is on the host
	}
	if err != nil {
		return false, err
	}
	timed(cmd, "serialized on "+from.host, start, "paused, RAM saved")
	return false, nil
}

// stateSerialized is the state a manager's WorkspaceStateFault names for a workspace
// serialized (paused, its RAM in a memory image).
const stateSerialized = "paused (serialized)"

// serializedAlready says whether fe refuses a Serialize because the workspace is
// serialized already: a WorkspaceStateFault whose detail names it in the state asked
// for. Its words are not read: a refusal for another reason (a scratch disk, whose
// contents do not travel; an earlier operation's unknown outcome) names the state the
// workspace is in, and the move must not take it for one serialized and undeploy it.
func serializedAlready(fe *client.FaultError) bool {
	if fe.Type != "WorkspaceStateFault" || fe.Fault == nil || len(fe.Fault.Detail) == 0 {
		return false
	}
	var current, requested string
	for _, c := range fe.Fault.Detail[0].ChildElements() {
		switch c.Tag {
		case "CurrentState":
			current = strings.TrimSpace(c.Text())
		case "RequestedState":
			requested = strings.TrimSpace(c.Text())
		}
	}
	return current == stateSerialized && requested == stateSerialized
}

// moveBack deploys the workspace again where it was after its deploy on the new host
// failed with cause, and returns cause; the lines on stderr say where it is now.
func moveBack(cmd *cobra.Command, ws *wsa.EPR, from deployedAt, state, arg string, cause error) error {
	if cmd.Context().Err() != nil {
		return cause
	}
	stderr := cmd.ErrOrStderr()
	fmt.Fprintf(stderr, "vws: the deploy on the new host failed; deploying workspace %s back on %s\n", arg, from.host)
	resp, err := deployOn(cmd, from.manager, ws, state, arg)
	if err != nil {
		redeploy := fmt.Sprintf("vws deploy %s --state %s", arg, orShutdown(state))
		fmt.Fprintf(stderr, "vws: deploying it back on %s failed too (%v): it is in the repository with its changes (and its RAM, if it was running); %s puts it on a host\n",
			from.host, err, redeploy)
		return &inRepositoryError{cause: cause, back: err, redeploy: redeploy}
	}
	fmt.Fprintf(stderr, "vws: workspace %s is back on %s, %s; the move failed because:\n", arg, from.host, txt(resp, "State"))
	return cause
}

// resumeAfterFailedUndeploy puts back a workspace the move serialized when its
// Undeploy then failed with cause (libvirtd away a moment, say): one that was running
// is started again where it is, from the RAM just saved, so that the grid job does
// not stay stopped unnoticed; for one that was paused, or that cannot be started, the
// lines on stderr say where it is and how to resume it. It returns cause.
func resumeAfterFailedUndeploy(cmd *cobra.Command, ws *wsa.EPR, from deployedAt, arg string, cause error) error {
	if cmd.Context().Err() != nil {
		return cause
	}
	stderr := cmd.ErrOrStderr()
	now, err := whereDeployed(cmd, ws, arg)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "vws: the undeploy failed after the move serialized workspace %s on %s, and where it is now cannot be read (%v): "+
			"vws status %s says; vws start %s resumes it where it is deployed, vws deploy %s --state running once it is in the repository\n", arg, from.host, err, arg, arg, arg)
	case now.manager.Address != from.manager.Address || now.state != "paused":
		fmt.Fprintf(stderr, "vws: the undeploy failed after the move serialized workspace %s on %s; it is now %s on %s: vws status %s says more\n",
			arg, from.host, now.state, now.host, arg)
	case from.state == "paused":
		fmt.Fprintf(stderr, "vws: workspace %s stays serialized on %s, its RAM saved by the move: vws start %s resumes it, running; the move failed because:\n", arg, from.host, arg)
	default:
		if _, err := lifecycleClient().Invoke(cmd.Context(), from.manager, "Start", mgrBody("Start", ws)); err != nil {
			fmt.Fprintf(stderr, "vws: workspace %s stays serialized on %s, its RAM saved by the move, and starting it again failed too (%v): vws start %s resumes it; the move failed because:\n",
				arg, from.host, err, arg)
		} else {
			fmt.Fprintf(stderr, "vws: workspace %s is running again on %s, from the RAM the move saved; the move failed because:\n", arg, from.host)
		}
	}
	return cause
}

// inRepositoryError is a move that failed on the new host and could not go back
// either (a drained host takes no deploys): the workspace waits in the repository.
type inRepositoryError struct {
	cause, back error
	redeploy    string // the command that puts it on a host again
}

func (e *inRepositoryError) Error() string { return e.cause.Error() }
func (e *inRepositoryError) Unwrap() error { return e.cause }

func orShutdown(state string) string {
	if state == "" {
		return "shutdown"
	}
	return state
}
