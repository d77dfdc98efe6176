// Command vws is the virtual workspace service and its command-line client.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/client"
)

// Exit codes: 0 success, 1 usage or local failure, 2 the service answered with a fault.
const (
	exitError = 1
	exitFault = 2
)

func main() {
	root := newRootCommand()
	if err := root.Execute(); err != nil {
		var fe *client.FaultError
		if errors.As(err, &fe) {
			fmt.Fprintln(os.Stderr, "vws: fault:", fe.Error())
			os.Exit(exitFault)
		}
		fmt.Fprintln(os.Stderr, "vws:", err)
		os.Exit(exitError)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "vws",
		Short:         "Virtual workspaces for grids: factory, repository and host manager",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCommand(), newWSRFCommand(), newVersionCommand(), newImageCommand(),
		newCreateCommand(), newListCommand(), newStatusCommand(), newCloneCommand(), newDestroyCommand(),
		newDeployCommand(), newLifecycleCommand("Start", "Boot a deployed workspace (a serialized one resumes from its memory image)"),
		newLifecycleCommand("Pause", "Suspend a running workspace's vCPUs"),
		newLifecycleCommand("Unpause", "Resume a paused workspace"),
		newLifecycleCommand("Undeploy", "Hand a shut-down or serialized workspace back to the Repository with its changes"),
		newShutdownCommand(), newConsoleCommand(), newHostCommand())
	root.AddCommand(newAuditCommand())
	registerTLSFlags(root)
	root.AddCommand(newPKICommand())
	return root
}
