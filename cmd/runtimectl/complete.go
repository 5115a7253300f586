package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Shell completion (bash and zsh ask runtimectl with
// --generate-bash-completion): besides commands and flags, the names a
// running runtimed knows — languages, images, sessions. Nothing is
// printed when runtimed does not answer within a second; the shell then
// completes file names.

// complete returns a completion that prints what names gives after the
// words typed so far (those before --generate-bash-completion), and the
// command's flags when a flag is being typed.
func complete(names func(c *cli.Context, prev string) []string) cli.BashCompleteFunc {
	return func(c *cli.Context) {
		args := os.Args
		prev := ""
		if n := len(args); n >= 2 && args[n-1] == "--generate-bash-completion" {
			prev = args[n-2]
		}
		if prev == "-" || strings.HasPrefix(prev, "-") && !takesValue(valueFlags(c.Command.Flags), prev) {
			cli.DefaultCompleteWithFlags(c.Command)(c)
			return
		}
		for _, n := range names(c, prev) {
			fmt.Fprintln(c.App.Writer, n)
		}
	}
}

func completionContext(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, time.Second)
}

// languageNames are the languages runtimed runs, and each with @VERSION.
func languageNames(c *cli.Context) []string {
	ctx, cancel := completionContext(c)
	defer cancel()
	rs, err := client(c).Runtimes(ctx)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range rs.Runtimes {
		for _, n := range []string{r.Language, r.Language + "@" + r.Version} {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	sort.Strings(out)
	return out
}

// imageNames are the images runtimed knows.
func imageNames(c *cli.Context) []string {
	ctx, cancel := completionContext(c)
	defer cancel()
	res, err := client(c).Images(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, im := range res.Images {
		if im.Present {
			out = append(out, im.Reference)
		}
	}
	return out
}

// sessionIDs are the caller's sessions.
func sessionIDs(c *cli.Context) []string {
	ctx, cancel := completionContext(c)
	defer cancel()
	ss, err := client(c).Sessions(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range ss.Sessions {
		out = append(out, s.ID)
	}
	return out
}

// languageFlagValue completes a language after -l or --language.
func languageFlagValue(c *cli.Context, prev string) []string {
	if prev == "-l" || prev == "--language" {
		return languageNames(c)
	}
	return nil
}

// tokenNames are the configured tokens not yet revoked, for token
// revoke (root only: none for anyone else).
func tokenNames(c *cli.Context) []string {
	ctx, cancel := completionContext(c)
	defer cancel()
	ts, err := client(c).Tokens(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, t := range ts.Tokens {
		if !t.Revoked {
			out = append(out, t.Name)
		}
	}
	return out
}
