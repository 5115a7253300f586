package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/pkg/image"
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
		if client != nil {
			current, err := image.Current(ctx, client, r, cfg.Runtime.Snapshotter)
			if err != nil {
				return fmt.Errorf("%s: %w", r.Name, err)
			}
			if current {
				fmt.Printf("%s: %s is up to date\n", r.Name, r.Reference)
				continue
			}
		}
		cached := image.Cached(opts.CacheDir, r)
		start := time.Now()
		dir, err := image.Build(ctx, r, opts)
		if err != nil {
			return err
		}
		if cached {
			fmt.Printf("%s: using the cached build %s\n", r.Name, dir)
		} else {
			fmt.Printf("%s: built %s (%s)\n", r.Name, dir, time.Since(start).Round(time.Millisecond))
		}
		if client == nil {
			continue
		}
		start = time.Now()
		if err := image.Import(ctx, client, dir, r.Reference, cfg.Runtime.Snapshotter); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		fmt.Printf("%s: imported %s into namespace %s (%s)\n", r.Name, r.Reference, cfg.Namespace, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
