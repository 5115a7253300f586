package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

var healthCommand = &cli.Command{
	Name:  "health",
	Usage: "check that runtimed is up and containerd answers it",
	Action: func(c *cli.Context) error {
		h, err := client(c).Health(c.Context)
		if err != nil {
			return cli.Exit(fmt.Sprintf("unhealthy: %v", err), 1)
		}
		fmt.Printf("%s (runtimed %s, containerd %s)\n", h.Status, h.Version, h.Containerd)
		return nil
	},
}
