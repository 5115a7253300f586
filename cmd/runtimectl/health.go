package main

import (
	"errors"
	"fmt"
	"sort"

	"github.com/runtimed/runtimed/pkg/api"

	"github.com/urfave/cli/v2"
)

var healthCommand = &cli.Command{
	Name:  "health",
	Usage: "check that runtimed is up and containerd answers it",
	Action: func(c *cli.Context) error {
		h, err := client(c).Health(c.Context)
		if err != nil {
			return cli.Exit(fmt.Sprintf("unhealthy: %v", err), exitForError(err))
		}
		fmt.Printf("%s (runtimed %s, containerd %s)\n", h.Status, h.Version, h.Containerd)
		// Alive is not ready: say what readiness lacks, and which
		// languages cannot run.
		r, err := client(c).Ready(c.Context)
		if err != nil && !r.Ready {
			for _, name := range []string{"images", "runtime", "containerd"} {
				if v := r.Checks[name]; v != "" && v != "ok" {
					fmt.Printf("but not ready: %s: %s (runtimectl ready)\n", name, v)
				}
			}
		}
		if v := r.Checks["languages"]; v != "" && v != "ok" {
			fmt.Printf("but some languages %s\n", v)
		}
		return nil
	},
}

var readyCommand = &cli.Command{
	Name:  "ready",
	Usage: "check that runtimed can take work (containerd, the OCI runtime, every language's image and commands); exits 1 if not",
	Action: func(c *cli.Context) error {
		r, err := client(c).Ready(c.Context)
		var aerr *api.Error
		notReady := errors.As(err, &aerr) && aerr.Code == api.CodeUnavailable && len(r.Checks) > 0
		if err != nil && !notReady {
			return cli.Exit(err.Error(), exitFailure)
		}
		names := make([]string, 0, len(r.Checks))
		for name := range r.Checks {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Printf("%-11s %s\n", name, r.Checks[name])
		}
		if !r.Ready {
			return cli.Exit("not ready", exitFailure)
		}
		fmt.Println("ready")
		return nil
	},
}
