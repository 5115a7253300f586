// Package clidoc derives runtimed's and runtimectl's documentation from
// their command definitions, so that the manual pages the package ships
// cannot drift from the commands.
package clidoc

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// ManCommand is a hidden "man" command that prints the application's
// manual page (roff) for the given section.
func ManCommand(section int) *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "print the manual page",
		Hidden: true,
		Action: func(c *cli.Context) error {
			page, err := c.App.ToManWithSection(section)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, page)
			return err
		},
	}
}
