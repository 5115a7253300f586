package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags come after a command's arguments, as docker's
// and kubectl's do (`runtimectl run hello.py --json`): the flags of the
// command named in args (after the global ones) are moved before its
// first argument. "--" still ends the flags: what follows it stays as it
// is, the program's.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	// The global flags, then the command path (run, session run, ...).
	global := valueFlags(app.Flags)
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		out = append(out, args[i])
		if takesValue(global, args[i]) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
		i++
	}
	cmds := app.Commands
	var cmd *cli.Command
	for i < len(args) {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd = next
		out = append(out, args[i])
		i++
		cmds = cmd.Subcommands
	}
	if cmd == nil || hasSubcommands(cmd) || cmd.SkipFlagParsing {
		return append(out, args[i:]...)
	}
	known := valueFlags(cmd.Flags)
	var flags, rest []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-" && isFlag(cmd.Flags, a):
			flags = append(flags, a)
			if takesValue(known, a) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(append(out, flags...), rest...)
}

// hasSubcommands reports whether cmd has subcommands of its own (not
// only the help one urfave/cli adds once it ran).
func hasSubcommands(cmd *cli.Command) bool {
	for _, s := range cmd.Subcommands {
		if s.Name != "help" {
			return true
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// valueFlags are the names of the flags that take a value (not booleans).
func valueFlags(flags []cli.Flag) map[string]bool {
	out := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			out[n] = !isBool
		}
	}
	return out
}

// flagName is the name in -n, --name or --name=value.
func flagName(a string) (string, bool) {
	name := strings.TrimLeft(a, "-")
	name, _, withValue := strings.Cut(name, "=")
	return name, withValue
}

func isFlag(flags []cli.Flag, a string) bool {
	name, _ := flagName(a)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return name == "help" || name == "h"
}

// takesValue reports whether a is a flag whose value is the next
// argument.
func takesValue(known map[string]bool, a string) bool {
	name, withValue := flagName(a)
	return known[name] && !withValue
}
