// Command vws is the virtual workspace service and its command-line client.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/server"
)

func main() {
	os.Exit(run(interruptContext(), os.Args[1:], os.Stdout, os.Stderr))
}

// interruptContext is canceled by the first Ctrl-C, which cancels the command; a
// second one ends vws at once.
func interruptContext() context.Context {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx
}

func newRootCommand() *cobra.Command {
	// A command line's credentials are its own: forget those an earlier one (in the
	// same process, as in tests) loaded.
	*cliTransport = lazyTransport{}
	forgetAddresses()
	root := &cobra.Command{
		Use:           "vws",
		Short:         "Virtual workspaces for grids: factory, repository and host manager",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version, as most tools have, says what vws version does.
		Version: server.Version,
	}
	root.SetVersionTemplate("vws {{.Version}}\n")
	root.AddCommand(newServeCommand(), newWSRFCommand(), newVersionCommand(), newImageCommand(),
		newCreateCommand(), newListCommand(), newStatusCommand(), newCloneCommand(), newDestroyCommand(),
		newDeployCommand(), newLifecycleCommand("Start", "Boot a deployed workspace (a serialized one resumes from its memory image)"),
		newLifecycleCommand("Pause", "Suspend a running workspace's vCPUs"),
		newLifecycleCommand("Unpause", "Resume a paused workspace"),
		newLifecycleCommand("Undeploy", "Hand a shut-down or serialized workspace back to the Repository with its changes"),
		newShutdownCommand(), newConsoleCommand(), newHostCommand(), newPlaceCommand(), newMoveCommand(), newReclaimCommand())
	root.AddCommand(newAuditCommand(), newDatabaseCommand())
	registerTLSFlags(root)
	root.AddCommand(newPKICommand())
	polish(root)
	return root
}
