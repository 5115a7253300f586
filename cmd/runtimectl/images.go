package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/internal/progress"
	"github.com/runtimed/runtimed/pkg/api"
)

var imagesCommand = &cli.Command{
	Name:    "images",
	Aliases: []string{"image"},
	Usage:   "list, build, import, pull and remove the language images (changes need root)",
	Subcommands: []*cli.Command{
		{
			Name:    "ls",
			Aliases: []string{"list"},
			Usage:   "list each language's image, its size and whether its recipe changed since it was built, then the other images",
			Flags:   outputFlags(),
			Action:  imagesList,
		},
		{
			Name:  "build",
			Usage: "build the language's image from its recipe (unless cached) and import it (unless current)",
			Description: "LANGUAGE is a language's name or alias (its newest version), LANGUAGE@VERSION a version\n" +
				"(python@3.11), or a recipe's name (python-3.13).",
			ArgsUsage:    "LANGUAGE[@VERSION]...",
			BashComplete: complete(func(c *cli.Context, _ string) []string { return languageNames(c) }),
			Action:       imagesBuild,
		},
		{
			Name:      "import",
			Usage:     "import an image archive (an OCI layout or `docker save` tar; - reads standard input)",
			ArgsUsage: "FILE",
			Flags:     []cli.Flag{&cli.StringFlag{Name: "reference", Aliases: []string{"r"}, Usage: "name the archive's one image `REF`"}},
			Action:    imagesImport,
		},
		{
			Name:      "pull",
			Usage:     "pull an image from an OCI registry (HTTPS; plain HTTP on loopback)",
			ArgsUsage: "REF...",
			Action: eachArg(func(c *cli.Context, ref string) (*api.ImageResult, error) {
				return client(c).PullImage(c.Context, ref)
			}),
		},
		{
			Name:         "rm",
			Aliases:      []string{"remove"},
			Usage:        "remove an image from containerd: a reference, a language's (python, python@3.11) or its short name (python:3.13)",
			ArgsUsage:    "REF|LANGUAGE[@VERSION]...",
			BashComplete: complete(func(c *cli.Context, _ string) []string { return append(imageNames(c), languageNames(c)...) }),
			Action: eachArg(func(c *cli.Context, ref string) (*api.ImageResult, error) {
				return client(c).RemoveImage(c.Context, ref)
			}),
		},
	},
}

// imagesBuild builds each language's image in turn, printing each step's
// line as it ends (runtimed streams them) on stderr and, on a terminal, a
// bar under them: images done of all, and the time so far.
func imagesBuild(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("usage: runtimectl images build "+c.Command.ArgsUsage, exitUsage)
	}
	bar := progress.New(c.App.ErrWriter, c.NArg(), progress.IsTerminal(c.App.ErrWriter))
	defer bar.Close()
	for _, name := range c.Args().Slice() {
		res, err := client(c).BuildImageStream(c.Context, name, func(line string) { bar.Print(c.App.ErrWriter, line) })
		bar.Done()
		if err != nil {
			return cli.Exit(fmt.Sprintf("%s: %v", name, err), exitForError(err))
		}
		var changes strings.Builder
		printChanges(&changes, res)
		bar.Print(c.App.Writer, changes.String())
	}
	return nil
}

// eachArg runs do for each argument in turn, printing what it did; the
// first failure stops it.
func eachArg(do func(*cli.Context, string) (*api.ImageResult, error)) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.Exit(fmt.Sprintf("usage: runtimectl images %s %s", c.Command.Name, c.Command.ArgsUsage), exitUsage)
		}
		for _, arg := range c.Args().Slice() {
			res, err := do(c, arg)
			if err != nil {
				return cli.Exit(fmt.Sprintf("%s: %v", arg, err), exitForError(err))
			}
			printChanges(c.App.Writer, res)
		}
		return nil
	}
}

func printChanges(w io.Writer, res *api.ImageResult) {
	for _, ch := range res.Images {
		what := string(ch.Action)
		switch {
		case ch.Action == api.ImageUpToDate:
			what = "up to date"
		case ch.Action == api.ImageBuilt && ch.Cached:
			what = "imported from the build cache"
		}
		line := fmt.Sprintf("%s: %s", ch.Reference, what)
		if ch.SizeBytes > 0 {
			line += ", " + humanBytes(ch.SizeBytes)
		}
		fmt.Fprintf(w, "%s (%s)\n", line, (time.Duration(ch.DurationMS) * time.Millisecond).String())
	}
}

func imagesImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: runtimectl images import [--reference REF] FILE", exitUsage)
	}
	var in io.Reader = os.Stdin
	if path := c.Args().First(); path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return cli.Exit(err.Error(), exitForError(err))
		}
		defer f.Close()
		in = f
	}
	res, err := client(c).ImportImage(c.Context, in, c.String("reference"))
	if err != nil {
		return cli.Exit(err.Error(), exitForError(err))
	}
	printChanges(c.App.Writer, res)
	return nil
}

var recipeStates = map[api.RecipeState]string{
	api.RecipeCurrent:  "current",
	api.RecipeChanged:  "changed since built",
	api.RecipeNotBuilt: "not built",
	api.RecipeOther:    "not built from it",
	api.RecipeNone:     "-",
}

func imagesList(c *cli.Context) error {
	res, err := client(c).Images(c.Context)
	if err != nil {
		return cli.Exit(err.Error(), exitForError(err))
	}
	return printAs(c, res, func() error { return imagesTable(c, res) })
}

func imagesTable(c *cli.Context, res *api.Images) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "IMAGE\tLANGUAGES\tSIZE\tCREATED\tRECIPE")
	for _, im := range res.Images {
		size, created := "missing", "-"
		if im.Building {
			size = "building"
		}
		if im.Present {
			size, created = humanBytes(im.SizeBytes), im.Created.Local().Format("2006-01-02 15:04")
		}
		langs := strings.Join(im.Languages, ",")
		if langs == "" {
			langs = "-"
		}
		state := recipeStates[im.RecipeState]
		if im.Recipe != "" && im.RecipeState != api.RecipeNone {
			state = im.Recipe + ": " + state
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", im.Reference, langs, size, created, state)
	}
	return w.Flush()
}

// humanBytes writes n in binary units, e.g. 41.5 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i])
}
