package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/server"
)

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the vws version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "vws", server.Version) },
	}
}
