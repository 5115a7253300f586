package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/pkg/api"
)

var poolsCommand = &cli.Command{
	Name:  "pools",
	Usage: "show the warm pools: sandboxes started ahead of requests",
	Flags: outputFlags(),
	Action: func(c *cli.Context) error {
		ps, err := client(c).Pools(c.Context)
		if err != nil {
			return cli.Exit(err.Error(), exitForError(err))
		}
		return printAs(c, ps, func() error { return poolsTable(c, ps) })
	},
}

func poolsTable(c *cli.Context, ps *api.Pools) error {
	{
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "IMAGE\tMEMORY\tCPU\tPIDS\tREADY\tSTARTING\tTARGET\tSIZE\tIDLE MEMORY")
		for _, p := range ps.Pools {
			fmt.Fprintf(w, "%s\t%d MiB\t%g\t%d\t%d\t%d\t%d\t%d\t%.1f MiB\n", p.Image, p.MemoryBytes>>20, p.CPU, p.Pids,
				p.Ready, p.Creating, p.Target, p.Size, float64(p.IdleBytes)/(1<<20))
		}
		return w.Flush()
	}
}
