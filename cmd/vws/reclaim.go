package main

import (
	"fmt"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/vwsns"
)

func newReclaimCommand() *cobra.Command {
	var base string
	cmd := &cobra.Command{
		Use:   "reclaim EPR|KEY",
		Short: "Take a workspace back from a silent host (one that went down) into the repository",
		Long: `Reclaim hands a workspace deployed on a silent host — one whose announcements
stopped, as vws host list shows and the workspace's vw:hostSilentSince says — back to
the repository as it was checked out: the lock is released, and the workspace is shut
down, or paused with its memory image if it went out serialized. What it did on that
host since is lost. Then vws deploy puts it on another host. Should the host come
back, its manager finds the workspace no longer its own and removes its copy.

A host that is heard from is refused: undeploy, move or evacuate instead. It needs
the site administrator's right (policy class admin).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := workspaceEPR(cmd, base, args[0])
			if err != nil {
				return err
			}
			body := etree.NewElement("vw:Reclaim")
			body.CreateAttr("xmlns:vw", vwsns.Workspace)
			resp, err := soapClient().Invoke(cmd.Context(), ws, "Reclaim", body)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "reclaimed from silent host %s: in the repository, %s (what it did there since its check-out is lost); vws deploy %s puts it on another host\n",
				txt(resp, "Host"), txt(resp, "State"), args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "url", "", "base URL of vws (default $VWS_URL, else http://127.0.0.1:8080)")
	return cmd
}
