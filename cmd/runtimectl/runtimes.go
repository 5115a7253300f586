package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/pkg/api"
)

var runtimesCommand = &cli.Command{
	Name:  "runtimes",
	Usage: "list the languages runtimed runs",
	Flags: outputFlags(),
	Action: func(c *cli.Context) error {
		rs, err := client(c).Runtimes(c.Context)
		if err != nil {
			return cli.Exit(err.Error(), exitForError(err))
		}
		return printAs(c, rs, func() error { return runtimesTable(c, rs) })
	},
}

func runtimesTable(c *cli.Context, rs *api.RuntimesResponse) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LANGUAGE\tVERSION\tEXTENSION\tALIASES\tIMAGE")
	var unavailable []string
	for _, r := range rs.Runtimes {
		img := r.Image
		switch {
		case r.ImageBuilding:
			img += " (building)"
		case !r.ImagePresent:
			img += " (missing)"
		case r.Unavailable != "":
			img += " (unavailable)"
			unavailable = append(unavailable, fmt.Sprintf("%s %s cannot run: %s", r.Language, r.Version, r.Unavailable))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Language, r.Version, r.Extension, strings.Join(r.Aliases, ","), img)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, u := range unavailable {
		if _, err := fmt.Fprintln(c.App.Writer, u); err != nil {
			return err
		}
	}
	return nil
}
