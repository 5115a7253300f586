package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/pkg/api"
)

var tokenCommand = &cli.Command{
	Name:  "token",
	Usage: "make, list and revoke API tokens for runtimed's TCP listener",
	Subcommands: []*cli.Command{
		{
			Name:      "new",
			Usage:     "print a fresh random token, and the config lines that hold its hash",
			ArgsUsage: "NAME",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("token new: give the token's NAME", exitUsage)
				}
				return newToken(c.App.Writer, rand.Reader, c.Args().First())
			},
		},
		{
			Name:  "ls",
			Usage: "list the configured tokens: limits, use, sessions, whether revoked (root)",
			Flags: outputFlags(),
			Action: func(c *cli.Context) error {
				ts, err := client(c).Tokens(c.Context)
				if err != nil {
					return cli.Exit(err.Error(), exitForError(err))
				}
				return printAs(c, ts, func() error { return tokensTable(c.App.Writer, ts, time.Now()) })
			},
		},
		{
			Name:         "revoke",
			Usage:        "refuse a token from now on, also after reloads and restarts, and end its sessions (root)",
			ArgsUsage:    "NAME",
			BashComplete: complete(func(c *cli.Context, _ string) []string { return tokenNames(c) }),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("token revoke: give the token's NAME (runtimectl token ls lists them)", exitUsage)
				}
				t, err := client(c).RevokeToken(c.Context, c.Args().First())
				if err != nil {
					return cli.Exit(err.Error(), exitForError(err))
				}
				_, err = fmt.Fprintf(c.App.Writer, "revoked %s (%d sessions ended); its requests are refused from now on.\n"+
					"Its [[tokens]] entry in runtimed.toml can be removed; to let the client in again, make it a new token (runtimectl token new).\n",
					t.Name, t.SessionsEnded)
				return err
			},
		},
	},
}

func tokensTable(w io.Writer, ts *api.Tokens, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tSHA256\tRATE/MIN\tBURST\tCONCURRENT\tIN USE\tSESSIONS\tLAST USED")
	for _, t := range ts.Tokens {
		state := "active"
		if t.Revoked {
			state = "revoked"
		}
		last := "-"
		if t.LastUsed != nil {
			last = now.Sub(*t.LastUsed).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%g\t%d\t%d\t%d\t%d\t%s\n", t.Name, state, t.SHA256Prefix,
			t.RatePerMinute, t.Burst, t.MaxConcurrent, t.InUse, t.Sessions, last)
	}
	return tw.Flush()
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// newToken writes a token of 32 random bytes and the [[tokens]] entry for
// runtimed's config. Only the hash goes in the config: the token itself
// is shown once.
func newToken(w io.Writer, random io.Reader, name string) error {
	if !tokenName.MatchString(name) {
		return cli.Exit(fmt.Sprintf("token new: %q: a name is 1 to 64 letters, digits, '.', '_' or '-'", name), exitUsage)
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return err
	}
	token := "rtd_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	_, err := fmt.Fprintf(w, `token: %s

Give the token to the client; runtimed keeps only its hash. Add to runtimed.toml:

[[tokens]]
name = %q
sha256 = %q
`, token, name, hex.EncodeToString(sum[:]))
	return err
}
