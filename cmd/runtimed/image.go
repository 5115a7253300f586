package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/internal/image"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/progress"
)

var imageCommand = &cli.Command{
	Name:  "image",
	Usage: "build and import the language images",
	Subcommands: []*cli.Command{
		{
			Name:      "build",
			Usage:     "build each recipe's image (unless cached) and import it into containerd (unless current)",
			ArgsUsage: "[LANGUAGE[@VERSION]|RECIPE...]",
			Description: "Builds the image of each language named (its newest version, or the newest that VERSION\n" +
				"selects: python@3.11), or of each recipe named; all recipes without arguments.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "recipes", Usage: "directory of image recipes, *.toml (overrides images.recipes)"},
				&cli.StringFlag{Name: "cache", Usage: "directory of built images, OCI layouts (overrides images.cache)"},
				&cli.StringFlag{Name: "mirror", Usage: "Debian mirror for debootstrap (overrides images.mirror)"},
				&cli.BoolFlag{Name: "no-import", Usage: "build into the cache only"},
				&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "images built at once (default: the number of CPUs)"},
				&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print what the build's commands print (debootstrap, apt), not only a line per step"},
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
	recipes, err := image.LoadRecipesWith(cfg.Images.Recipes, cfg.WithExtraPackages().ExtraPackages)
	if err != nil {
		return err
	}
	if args := c.Args().Slice(); len(args) > 0 {
		names, err := image.RecipeNames(cfg.WithExtraPackages(), args, language.NewRegistry(cfg).ImageOf)
		if err != nil {
			return err
		}
		recipes = slices.DeleteFunc(recipes, func(r image.Recipe) bool { return !slices.Contains(names, r.Name) })
	}
	// Ctrl-C or a stop ends the builds under way cleanly: their commands
	// are killed, their overlays unmounted, their work removed.
	sigCtx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx := namespaces.WithNamespace(sigCtx, cfg.Namespace)
	// The bar stays off when the commands' own output goes to the terminal.
	status := progress.New(os.Stderr, len(recipes), !c.Bool("verbose") && progress.IsTerminal(os.Stderr))
	defer status.Close()
	opts := image.BuildOpts{CacheDir: cfg.Images.Cache, Mirror: cfg.Images.Mirror, Progress: status}
	if c.Bool("verbose") {
		opts.Output = os.Stderr
	}

	var client *containerd.Client
	if !c.Bool("no-import") {
		if client, err = newClient(cfg); err != nil {
			return err
		}
		defer client.Close()
	}
	jobs := c.Int("jobs")
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	// Images are built side by side, each on its parent's layers (built
	// once, by whichever needs them first).
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, jobs)
	)
	for _, r := range recipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p, err := image.Provide(ctx, client, r, opts, cfg.Runtime.Snapshotter)
			defer status.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
				status.Print(os.Stderr, fmt.Sprintf("%s: failed: %v\n", r.Name, err))
				return
			}
			switch {
			case p.Current:
				status.Print(os.Stdout, fmt.Sprintf("%s: %s is up to date\n", r.Name, r.Reference))
			case p.Cached:
				status.Print(os.Stdout, fmt.Sprintf("%s: using the cached build %s\n", r.Name, p.Dir))
			default:
				status.Print(os.Stdout, fmt.Sprintf("%s: built %s (%s)\n", r.Name, p.Dir, p.BuildTime.Round(time.Millisecond)))
			}
			if p.Imported {
				status.Print(os.Stdout, fmt.Sprintf("%s: imported %s into namespace %s (%s)\n", r.Name, r.Reference, cfg.Namespace, p.ImportTime.Round(time.Millisecond)))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
