package image

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = d.Output, d.Output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s into %s: %w", opts.Suite, opts.Target, err)
	}
	return nil
}

// slimPaths are removed from every image: nothing in a sandbox reads
// documentation, manuals, translations, package lists or caches, and the
// runtime provides /dev, /proc, /sys and /run.
var slimPaths = []string{
	"/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
	"/usr/share/locale/*", "/usr/share/lintian", "/usr/share/linda",
	"/usr/share/common-licenses", "/usr/share/bash-completion",
	"/var/lib/apt/lists/*", "/var/cache/apt/*", "/var/cache/debconf/*-old",
	"/var/cache/ldconfig/*", "/var/log/*", "/var/lib/dpkg/*-old",
	"/dev/*", "/proc/*", "/sys/*", "/run/*", "/tmp/*", "/var/tmp/*",
	"/root/.*",
}

// slim removes slimPaths and the recipe's own list from root.
func slim(root string, extra []string) error {
	for _, pattern := range append(append([]string(nil), slimPaths...), extra...) {
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

// check runs the recipe's check command inside root with chroot(8), so a
// broken image is never imported.
func check(ctx context.Context, root string, argv []string, out io.Writer) error {
	if len(argv) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, argv...)...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("image check %v: %w", argv, err)
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

// Cached reports whether recipe's layout is in the cache.
func Cached(cacheDir string, recipe Recipe) bool {
	_, err := os.Stat(filepath.Join(LayoutDir(cacheDir, recipe), "index.json"))
	return err == nil
}

// Build builds recipe's root filesystem and writes it to the cache as an
// OCI image layout, returning the layout's directory. A layout already
// cached for the recipe's digest is returned without rebuilding.
func Build(ctx context.Context, recipe Recipe, opts BuildOpts) (string, error) {
	dir := LayoutDir(opts.CacheDir, recipe)
	if Cached(opts.CacheDir, recipe) {
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
	if err := slim(root, recipe.Remove); err != nil {
		return "", fmt.Errorf("slim %s: %w", recipe.Name, err)
	}
	// The sandbox's root is read-only, so the mount point of its working
	// directory must be in the image.
	if err := os.Mkdir(filepath.Join(root, "box"), 0o755); err != nil {
		return "", err
	}
	if err := check(ctx, root, recipe.Check, out); err != nil {
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
		return "", err
	}
	return dir, nil
}

// LayoutDir is where recipe's layout is cached.
func LayoutDir(cacheDir string, recipe Recipe) string {
	hex := strings.TrimPrefix(recipe.Digest, "sha256:")
	return filepath.Join(cacheDir, recipe.Name, hex[:16])
}
