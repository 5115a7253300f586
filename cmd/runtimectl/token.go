package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"

	"github.com/urfave/cli/v2"
)

var tokenCommand = &cli.Command{
	Name:  "token",
	Usage: "manage API tokens for runtimed's TCP listener",
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
	},
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
