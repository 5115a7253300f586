package image

import (
	"github.com/runtimed/runtimed/pkg/oci"

	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Debootstrap runs debootstrap(8). Arguments are passed as a list, never
// through a shell.
type Debootstrap struct {
	// Binary is the debootstrap executable; "debootstrap" if empty.
	Binary string
	// Output receives debootstrap's progress; discarded if nil.
	Output io.Writer
}

// DebootstrapOpts are one debootstrap invocation's arguments.
type DebootstrapOpts struct {
	Suite   string
	Target  string
	Mirror  string
	Variant string
	Include []string
}

// Run builds a Debian root filesystem in opts.Target.
func (d Debootstrap) Run(ctx context.Context, opts DebootstrapOpts) error {
	bin := d.Binary
	if bin == "" {
		bin = "debootstrap"
	}
	args := []string{}
	if opts.Variant != "" {
		args = append(args, "--variant="+opts.Variant)
	}
	if len(opts.Include) > 0 {
		args = append(args, "--include="+strings.Join(opts.Include, ","))
	}
	args = append(args, opts.Suite, opts.Target)
	if opts.Mirror != "" {
		args = append(args, opts.Mirror)
	}
	cmd := command(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = d.Output, d.Output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s into %s: %w", opts.Suite, opts.Target, err)
	}
	return nil
}

// command runs name with args under umask 022, whatever the caller's (the
// daemon's is 077): the files an image build creates must be readable in
// the sandbox. The arguments are passed as a list, never parsed by the
// shell.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `umask 022 && exec "$0" "$@"`, name}, args...)...)
}

// slimPaths are removed from every image: nothing in a sandbox reads
// documentation, manuals, translations, package lists or caches.
var slimPaths = []string{
	"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
	"/usr/share/locale/*", "/usr/share/lintian", "/usr/share/linda",
	"/usr/share/common-licenses", "/usr/share/bash-completion",
	"/var/lib/apt/lists/*", "/var/cache/apt/*", "/var/cache/debconf/*-old",
	"/var/cache/ldconfig/*", "/var/log/*", "/var/lib/dpkg/*-old",
	"/tmp/*", "/var/tmp/*", "/root/.*",
}

// runtimePaths are emptied last: the runtime provides /dev, /proc, /sys
// and /run, and the setup and check commands needed them.
var runtimePaths = []string{"/dev/*", "/proc/*", "/sys/*", "/run/*"}

// slim removes the paths matching patterns from root.
func slim(root string, patterns []string) error {
	for _, pattern := range patterns {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// chroot runs argv inside root with chroot(8): the recipe's setup
// commands, and its check, so that a broken image is never imported. A
// proc file system is mounted for the command (the dynamic loader needs
// it to resolve $ORIGIN).
func chroot(ctx context.Context, root string, argv []string, out io.Writer) (err error) {
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc in %s: %w", root, err)
	}
	defer func() {
		if uerr := unix.Unmount(proc, unix.MNT_DETACH); uerr != nil && err == nil {
			err = fmt.Errorf("unmount proc in %s: %w", root, uerr)
		}
	}()
	cmd := command(ctx, "chroot", append([]string{root}, argv...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %w", argv, err)
	}
	return nil
}

// BuildOpts say where and how images are built.
type BuildOpts struct {
	// CacheDir holds the built OCI layouts, one per recipe digest.
	CacheDir string
	Mirror   string
	Output   io.Writer
	Debootstrap
}

// cached reports whether recipe's layout is in the cache.
func cached(cacheDir string, recipe Recipe) bool {
	_, err := os.Stat(filepath.Join(layoutDir(cacheDir, recipe), "index.json"))
	return err == nil
}

// build builds recipe's root filesystem and writes it to the cache as an
// OCI image layout, returning the layout's directory. A layout already
// cached for the recipe's digest is returned without rebuilding.
func build(ctx context.Context, recipe Recipe, opts BuildOpts) (string, error) {
	dir := layoutDir(opts.CacheDir, recipe)
	if cached(opts.CacheDir, recipe) {
		return dir, nil
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(opts.CacheDir, ".build-"+recipe.Name+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "rootfs")
	out := opts.Output
	if out == nil {
		out = io.Discard
	}
	deb := opts.Debootstrap
	if deb.Output == nil {
		deb.Output = out
	}
	if err := deb.Run(ctx, DebootstrapOpts{
		Suite: recipe.Suite, Target: root, Mirror: opts.Mirror,
		Variant: "minbase", Include: recipe.Packages,
	}); err != nil {
		return "", err
	}
	if err := slim(root, append(slices.Clone(slimPaths), recipe.Remove...)); err != nil {
		return "", fmt.Errorf("slim %s: %w", recipe.Name, err)
	}
	for _, argv := range recipe.Setup {
		if err := chroot(ctx, root, argv, out); err != nil {
			return "", fmt.Errorf("setup %s: %w", recipe.Name, err)
		}
	}
	if err := mountPoints(root); err != nil {
		return "", err
	}
	if len(recipe.Check) > 0 {
		if err := chroot(ctx, root, recipe.Check, out); err != nil {
			return "", fmt.Errorf("check %s: %w", recipe.Name, err)
		}
	}
	if err := slim(root, runtimePaths); err != nil {
		return "", err
	}
	if err := neutralHostFiles(root); err != nil {
		return "", err
	}
	layout := filepath.Join(work, "layout")
	if err := writeLayout(ctx, root, layout, recipe); err != nil {
		return "", fmt.Errorf("write layout for %s: %w", recipe.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(layout, dir); err != nil {
		// Another build of the same recipe (a second make in another
		// checkout sharing the cache) finished first: its layout,
		// renamed into place whole, is this one's.
		if st, serr := os.Stat(filepath.Join(dir, "index.json")); serr == nil && st.Mode().IsRegular() {
			return dir, nil
		}
		return "", err
	}
	// Builds of the recipe's earlier versions are of no further use.
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*"))
	for _, o := range old {
		if o != dir {
			_ = os.RemoveAll(o)
		}
	}
	return dir, nil
}

// layoutDir is where recipe's layout is cached.
func layoutDir(cacheDir string, recipe Recipe) string {
	hex := strings.TrimPrefix(recipe.Digest, "sha256:")
	return filepath.Join(cacheDir, recipe.Name, hex[:16])
}

// hostFiles are what an image says of the host it runs on. debootstrap
// copies the build host's /etc/hostname and /etc/resolv.conf into the
// root; a sandbox must see neither (it has no network and its hostname
// is its own).
var hostFiles = map[string]string{
	"/etc/hostname":    "sandbox\n",
	"/etc/resolv.conf": "# runtimed sandboxes have no network.\n",
	"/etc/hosts":       "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
}

// neutralHostFiles replaces the build host's files in root with
// hostFiles (a link there is replaced, not followed).
func neutralHostFiles(root string) error {
	for name, content := range hostFiles {
		p := filepath.Join(root, name)
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o644); err != nil { // past the umask
			return err
		}
	}
	return nil
}

// mountPoints makes what a sandbox mounts over in the image: the sandbox's
// root is read-only, so the mount points of its working directory and of
// runtimed-init (a file) must be there.
func mountPoints(root string) error {
	box := filepath.Join(root, oci.BoxDir)
	if err := os.Mkdir(box, 0o755); err != nil {
		return err
	}
	agent := filepath.Join(root, oci.AgentPath)
	if err := os.MkdirAll(filepath.Dir(agent), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(agent, nil, 0o755); err != nil {
		return err
	}
	// The modes asked for, whatever the umask.
	for _, p := range []string{box, filepath.Dir(agent), agent} {
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}
