// Command runtimed is the daemon: it runs untrusted code in gVisor
// sandboxes through containerd and answers a JSON API on a unix socket.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/internal/clidoc"
	"github.com/runtimed/runtimed/internal/version"
)

const defaultConfigPath = "/etc/runtimed/runtimed.toml"

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "runtimed:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "runtimed",
		Usage:   "run untrusted code in gVisor sandboxes through containerd",
		Version: version.Version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: defaultConfigPath, Usage: "TOML configuration file"},
			&cli.StringFlag{Name: "socket", Usage: "unix socket to listen on (overrides the config)"},
			&cli.StringFlag{Name: "containerd", Usage: "containerd socket address (overrides the config)"},
			&cli.StringFlag{Name: "log-format", Value: "auto", Usage: "log format: text, json or auto (json unless on a terminal)"},
			&cli.StringFlag{Name: "log-level", Usage: "log level (overrides the config)"},
			&cli.StringFlag{Name: "recipes", Usage: "directory of image recipes (overrides images.recipes)"},
			&cli.StringFlag{Name: "cache", Usage: "directory of built images, OCI layouts (overrides images.cache)"},
			&cli.BoolFlag{Name: "build-missing", Usage: "build, while serving, the images of the languages that have a recipe and no image (until then they answer image_not_ready)"},
		},
		// --generate-bash-completion lists what may come next; the bash
		// and zsh completion scripts ask it.
		EnableBashCompletion: true,
		Action:               serveAction,
		Commands:             []*cli.Command{imageCommand, configCommand, clidoc.ManCommand(8)},
	}
}
