package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/internal/image"
)

var imageCommand = &cli.Command{
	Name:  "image",
	Usage: "build and import the language images",
	Subcommands: []*cli.Command{
		{
			Name:      "build",
			Usage:     "build each recipe's image (unless cached) and import it into containerd (unless current)",
			ArgsUsage: "[LANGUAGE...]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "recipes", Usage: "directory of image recipes, *.toml (overrides images.recipes)"},
				&cli.StringFlag{Name: "cache", Usage: "directory of built images, OCI layouts (overrides images.cache)"},
				&cli.StringFlag{Name: "mirror", Usage: "Debian mirror for debootstrap (overrides images.mirror)"},
				&cli.BoolFlag{Name: "no-import", Usage: "build into the cache only"},
			},
			Action: imageBuildAction,
		},
	},
}

func imageBuildAction(c *cli.Context) error {
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	recipes, err := image.LoadRecipes(cfg.Images.Recipes)
	if err != nil {
		return err
	}
	if names := c.Args().Slice(); len(names) > 0 {
		recipes = slices.DeleteFunc(recipes, func(r image.Recipe) bool { return !slices.Contains(names, r.Name) })
		if len(recipes) != len(names) {
			return fmt.Errorf("no recipe for some of %v", names)
		}
	}
	ctx := namespaces.WithNamespace(c.Context, cfg.Namespace)
	opts := image.BuildOpts{CacheDir: cfg.Images.Cache, Mirror: cfg.Images.Mirror, Output: os.Stderr}

	var client *containerd.Client
	if !c.Bool("no-import") {
		if client, err = newClient(cfg); err != nil {
			return err
		}
		defer client.Close()
	}
	for _, r := range recipes {
		p, err := image.Provide(ctx, client, r, opts, cfg.Runtime.Snapshotter)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		switch {
		case p.Current:
			fmt.Printf("%s: %s is up to date\n", r.Name, r.Reference)
		case p.Cached:
			fmt.Printf("%s: using the cached build %s\n", r.Name, p.Dir)
		default:
			fmt.Printf("%s: built %s (%s)\n", r.Name, p.Dir, p.BuildTime.Round(time.Millisecond))
		}
		if p.Imported {
			fmt.Printf("%s: imported %s into namespace %s (%s)\n", r.Name, r.Reference, cfg.Namespace, p.ImportTime.Round(time.Millisecond))
		}
	}
	return nil
}
