// Command runtimectl is runtimed's command-line client.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/internal/clidoc"
	"github.com/runtimed/runtimed/internal/version"
	"github.com/runtimed/runtimed/pkg/api"
)

func main() { os.Exit(runMain(os.Args, os.Stdout, os.Stderr)) }

// runMain runs runtimectl with args and returns its exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	err := app.Run(reorderArgs(app, args))
	if err == nil {
		return 0
	}
	// Not an ExitCoder: the command line was wrong (a flag).
	code := exitUsage
	if ec := cli.ExitCoder(nil); errors.As(err, &ec) {
		code = ec.ExitCode()
		if code == 3 && strings.HasPrefix(err.Error(), "No help topic for") {
			code = exitUsage // urfave/cli's "no such command"
		}
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(stderr, "runtimectl:", msg)
	}
	return code
}

func newApp() *cli.App {
	return &cli.App{
		Name:        "runtimectl",
		Usage:       "run code through runtimed",
		Version:     version.Version,
		Description: exitCodesHelp,
		// --generate-bash-completion lists what may come next; the bash
		// and zsh completion scripts ask it.
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "socket",
				Aliases: []string{"s"},
				Value:   api.DefaultSocket,
				EnvVars: []string{"RUNTIMED_SOCKET"},
				Usage:   "runtimed's address: a unix socket (PATH or unix://PATH), or tcp://HOST:PORT or an http(s):// URL with --token",
			},
			&cli.StringFlag{Name: "token", EnvVars: []string{"RUNTIMED_TOKEN"}, Usage: "bearer token for a TCP listener"},
		},
		Commands: []*cli.Command{runCommand, sessionCommand, runtimesCommand, imagesCommand, poolsCommand, healthCommand, readyCommand, versionCommand, tokenCommand, clidoc.ManCommand(1)},
		// Exit codes are runtimectl's own business (see run).
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func client(c *cli.Context) *api.Client {
	return api.NewClient(c.String("socket"), c.String("token"))
}

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print runtimectl's version and, if it answers, runtimed's",
	Action: func(c *cli.Context) error {
		fmt.Printf("runtimectl %s\n", version.Version)
		h, err := client(c).Health(c.Context)
		if err != nil {
			return cli.Exit(fmt.Sprintf("runtimed: %v", err), exitForError(err))
		}
		fmt.Printf("runtimed %s\ncontainerd %s\n", h.Version, h.Containerd)
		return nil
	},
}
