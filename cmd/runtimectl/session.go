package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/pkg/api"
)

var sessionCommand = &cli.Command{
	Name:  "session",
	Usage: "sandboxes that live across runs: files and state kept from one run to the next",
	Subcommands: []*cli.Command{
		sessionCreateCommand, sessionLsCommand, sessionRunCommand, sessionCpCommand, sessionRmCommand,
	},
}

var sessionCreateCommand = &cli.Command{
	Name:         "create",
	BashComplete: complete(func(c *cli.Context, _ string) []string { return languageNames(c) }),
	Usage:        "open a session and print its id",
	ArgsUsage:    "LANGUAGE",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "language-version", Usage: "the language's version, a semver range (default: the newest)"},
		&cli.StringFlag{Name: "memory", Usage: "the session's memory limit, e.g. 256M"},
		&cli.Float64Flag{Name: "cpu", Usage: "the session's CPU limit in cores"},
		&cli.Int64Flag{Name: "pids", Usage: "the session's process/thread limit"},
		&cli.StringFlag{Name: "box", Usage: "the size of the session's /box, e.g. 64M"},
		&cli.DurationFlag{Name: "idle", Usage: "end the session after this long unused, e.g. 10m"},
		&cli.DurationFlag{Name: "lifetime", Usage: "end the session this long after its creation, e.g. 1h"},
		&cli.BoolFlag{Name: "repl", Usage: "python and javascript: runs are cells of one interpreter that lives between them (names stay; the last expression's value is printed)"},
		&cli.BoolFlag{Name: "json", Usage: "print the session as JSON"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("session create: give one LANGUAGE", exitUsage)
		}
		req := &api.SessionRequest{Language: c.Args().First(), Version: c.String("language-version"),
			Limits: api.Limits{CPU: c.Float64("cpu"), Pids: c.Int64("pids")}}
		var err error
		if req.Limits.MemoryBytes, err = sizeFlag(c, "memory"); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		if req.BoxBytes, err = sizeFlag(c, "box"); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		req.IdleTimeoutS = seconds(c.Duration("idle"))
		req.MaxLifetimeS = seconds(c.Duration("lifetime"))
		if c.Bool("repl") {
			req.Mode = api.SessionModeRepl
		}
		s, err := client(c).CreateSession(c.Context, req)
		if err != nil {
			return cli.Exit(err.Error(), exitForError(err))
		}
		if c.Bool("json") {
			return printJSON(s)
		}
		fmt.Println(s.ID)
		return nil
	},
}

func sizeFlag(c *cli.Context, name string) (int64, error) {
	v := c.String(name)
	if v == "" {
		return 0, nil
	}
	n, err := units.RAMInBytes(v)
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	return n, nil
}

func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(int64(d/time.Second), 1)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var sessionLsCommand = &cli.Command{
	Name:  "ls",
	Usage: "list your sessions",
	Flags: outputFlags(),
	Action: func(c *cli.Context) error {
		ss, err := client(c).Sessions(c.Context)
		if err != nil {
			return cli.Exit(err.Error(), exitForError(err))
		}
		return printAs(c, ss, func() error { return sessionsTable(c, ss) })
	},
}

func sessionsTable(c *cli.Context, ss *api.Sessions) error {
	{
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tLANGUAGE\tVERSION\tMEMORY\tBOX\tRUNS\tSTATE\tCREATED\tEXPIRES")
		now := time.Now()
		for _, s := range ss.Sessions {
			state := "idle"
			if s.Busy {
				state = "busy"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d MiB\t%d MiB\t%d\t%s\t%s ago\tin %s\n", s.ID, s.Language, s.Version,
				s.Limits.MemoryBytes>>20, s.BoxBytes>>20, s.Runs, state,
				now.Sub(s.CreatedAt).Round(time.Second), s.ExpiresAt.Sub(now).Round(time.Second))
		}
		return w.Flush()
	}
}

var sessionRunCommand = &cli.Command{
	Name:         "run",
	BashComplete: complete(func(c *cli.Context, _ string) []string { return sessionIDs(c) }),
	Usage:        "run files, or code, in a session; runtimectl exits with the program's exit code",
	ArgsUsage:    "ID [FILE...] [-- ARGS...]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "code", Aliases: []string{"c"}, Usage: "the program's source, instead of files"},
		&cli.StringFlag{Name: "root", Usage: "send the files by their paths relative to `DIR` (default: their closest common directory)"},
		&cli.StringFlag{Name: "stdin", Usage: "file to give the program as stdin, - for runtimectl's own"},
		&cli.DurationFlag{Name: "timeout", Usage: "wall-time limit, e.g. 5s"},
		&cli.DurationFlag{Name: "cpu-time", Usage: "CPU-time limit, e.g. 2s"},
		&cli.StringFlag{Name: "output", Usage: "cap on each of stdout and stderr, e.g. 64K"},
		&cli.BoolFlag{Name: "json", Usage: "print the whole result as JSON"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "send runtimectl's stdin to the program a line at a time as it runs"},
	},
	Action: func(c *cli.Context) error {
		args := c.Args().Slice()
		if len(args) == 0 {
			return cli.Exit("session run: give the session's ID", exitUsage)
		}
		id, names := args[0], args[1:]
		req := &api.SessionRunRequest{Code: c.String("code")}
		if i := slices.Index(names, "--"); i >= 0 {
			names, req.Args = names[:i], names[i+1:]
		}
		if (req.Code == "") == (len(names) == 0) {
			return cli.Exit("session run: give FILEs or --code", exitUsage)
		}
		var err error
		if req.Files, err = readFiles(names, c.String("root")); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		if req.Stdin, err = readStdin(c.String("stdin"), os.Stdin); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		if d := c.Duration("timeout"); d > 0 {
			req.Limits.WallTimeMS = max(d.Milliseconds(), 1)
		}
		if d := c.Duration("cpu-time"); d > 0 {
			req.Limits.CPUTimeMS = max(d.Milliseconds(), 1)
		}
		if req.Limits.OutputBytes, err = sizeFlag(c, "output"); err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		var code int
		if c.Bool("interactive") {
			if req.Stdin != "" || c.Bool("json") {
				return cli.Exit("session run: -i sends runtimectl's stdin as it comes; it goes with neither --stdin nor --json", exitUsage)
			}
			files := req.Files
			if req.Code != "" {
				files = []api.File{{Name: "", Content: req.Code}}
			}
			dial := func(ctx context.Context, r *api.RunRequest) (*api.Connection, error) {
				return client(c).ConnectSession(ctx, id, r)
			}
			code, err = runInteractive(c.Context, dial, &api.RunRequest{Files: files, Args: req.Args, Limits: req.Limits}, os.Stdin, os.Stdout, os.Stderr)
		} else {
			code, err = sessionRun(c.Context, client(c), id, req, c.Bool("json"), os.Stdout, os.Stderr)
		}
		if err != nil {
			return cli.Exit(err.Error(), code)
		}
		if code != 0 {
			return cli.Exit("", code)
		}
		return nil
	},
}

// readFiles reads the named files for a request, each named by its path
// relative to root, or, if root is "", to the files' closest common
// directory: `run main.py lib/util.py` and `run ../multi/main.py
// ../multi/lib/util.py` both send main.py and lib/util.py.
func readFiles(names []string, root string) ([]api.File, error) {
	if len(names) == 0 {
		return nil, nil
	}
	abs := make([]string, len(names))
	for i, name := range names {
		a, err := filepath.Abs(name)
		if err != nil {
			return nil, err
		}
		abs[i] = a
	}
	if root != "" {
		r, err := filepath.Abs(root)
		if err != nil {
			return nil, err
		}
		root = r
	} else {
		root = filepath.Dir(abs[0])
		for _, a := range abs[1:] {
			for !within(root, a) {
				root = filepath.Dir(root)
			}
		}
	}
	var out []api.File
	for i, name := range names {
		if !within(root, abs[i]) {
			return nil, fmt.Errorf("%s is not under --root %s", name, root)
		}
		rel, err := filepath.Rel(root, abs[i])
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, api.File{Name: filepath.ToSlash(rel), Content: string(data)})
	}
	return out, nil
}

// within reports whether the absolute path p is under the directory dir.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// sessionRun runs req in the session id, prints the program's output as
// it comes (or the whole result as JSON), and returns runtimectl's exit
// code, as run does.
func sessionRun(ctx context.Context, cl *api.Client, id string, req *api.SessionRunRequest, asJSON bool, stdout, stderr io.Writer) (int, error) {
	var resp *api.RunResponse
	var err error
	live := &liveOutput{stdout: stdout, stderr: stderr}
	if asJSON {
		resp, err = cl.SessionRun(ctx, id, req)
	} else {
		resp, err = cl.SessionRunStream(ctx, id, req, live.event)
	}
	if err != nil {
		return exitForError(err), err
	}
	return printRun(resp, live, asJSON, stdout, stderr)
}

var sessionCpCommand = &cli.Command{
	Name:  "cp",
	Usage: "copy files between a session's /box and here, like docker cp (a directory with what it holds)",
	ArgsUsage: "ID:PATH LOCAL\n" +
		"   runtimectl session cp LOCAL ID:PATH",
	Action: func(c *cli.Context) error {
		if c.NArg() != 2 {
			return cli.Exit("session cp: give a source and a destination, one of them ID:PATH", exitUsage)
		}
		src, dst := c.Args().Get(0), c.Args().Get(1)
		sid, spath, sRemote := remotePath(src)
		did, dpath, dRemote := remotePath(dst)
		var err error
		switch {
		case sRemote && !dRemote:
			err = copyOut(c.Context, client(c), sid, spath, dst)
		case dRemote && !sRemote:
			err = copyIn(c.Context, client(c), src, did, dpath)
		default:
			return cli.Exit("session cp: exactly one of the two must be ID:PATH", exitUsage)
		}
		if err != nil {
			return cli.Exit(err.Error(), exitForError(err))
		}
		return nil
	},
}

// remotePath splits ID:PATH; a path in the box is relative to /box
// (/box/x and x are the same file).
func remotePath(arg string) (id, p string, ok bool) {
	id, p, ok = strings.Cut(arg, ":")
	if !ok || !strings.HasPrefix(id, "ses-") {
		return "", "", false
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/box")
	return id, strings.TrimPrefix(p, "/"), true
}

// copyIn copies the local file or directory src to p in the session's
// box: into p if p is a directory there, else as p.
func copyIn(ctx context.Context, cl *api.Client, src, id, p string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if _, list, err := cl.SessionPath(ctx, id, p); err == nil && list != nil {
		p = path.Join(p, filepath.Base(src))
	}
	if !st.IsDir() {
		return putFile(ctx, cl, id, src, p)
	}
	return filepath.WalkDir(src, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(src, name)
		if err != nil {
			return err
		}
		return putFile(ctx, cl, id, name, path.Join(p, filepath.ToSlash(rel)))
	})
}

func putFile(ctx context.Context, cl *api.Client, id, local, p string) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := cl.PutSessionFile(ctx, id, p, f); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// copyOut copies p, a file or a directory of the session's box, to dst:
// into dst if it is a directory, else as dst.
func copyOut(ctx context.Context, cl *api.Client, id, p, dst string) error {
	base := path.Base(p)
	if p == "" {
		base = "box"
	}
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		dst = filepath.Join(dst, base)
	}
	body, list, err := cl.SessionPath(ctx, id, p)
	if err != nil {
		return err
	}
	if list == nil {
		defer body.Close()
		return writeLocal(dst, body)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range list.Entries {
		sub := path.Join(p, e.Name)
		switch {
		case e.Dir:
			err = copyOut(ctx, cl, id, sub, filepath.Join(dst, e.Name))
		case strings.HasPrefix(e.Mode, "-"):
			var body io.ReadCloser
			if body, err = cl.SessionFile(ctx, id, sub); err == nil {
				err = writeLocal(filepath.Join(dst, e.Name), body)
				body.Close()
			}
		default:
			fmt.Fprintf(os.Stderr, "runtimectl: skipped %s: not a regular file\n", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func writeLocal(name string, r io.Reader) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	return errors.Join(err, f.Close())
}

var sessionRmCommand = &cli.Command{
	Name:         "rm",
	BashComplete: complete(func(c *cli.Context, _ string) []string { return sessionIDs(c) }),
	Usage:        "end sessions: their sandboxes and files are removed",
	ArgsUsage:    "ID...",
	Action: func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.Exit("session rm: give at least one ID", exitUsage)
		}
		code := 0
		for _, id := range c.Args().Slice() {
			if err := client(c).DeleteSession(c.Context, id); err != nil {
				fmt.Fprintf(os.Stderr, "runtimectl: %s: %v\n", id, err)
				code = max(code, exitForError(err))
				continue
			}
			fmt.Println(id)
		}
		if code != 0 {
			return cli.Exit("", code)
		}
		return nil
	},
}
