package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/pkg/oci"
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
	// debootstrap mounts proc and sys in the target for its second
	// stage: in a mount namespace of its own, they end with it.
	cmd := isolated(ctx, `umask 022 && exec "$0" "$@"`, append([]string{bin}, args...)...)
	cmd.Stdout, cmd.Stderr = d.Output, d.Output
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("debootstrap %s into %s: %w", opts.Suite, opts.Target, err)
	}
	return nil
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
// commands, and its check, so that a broken image is never imported.
func chroot(ctx context.Context, root string, argv []string, out io.Writer) error {
	cmd := chrootCommand(ctx, root, false, argv)
	cmd.Env = chrootEnv
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v: %w", argv, err)
	}
	return nil
}

// chrootScript mounts what a command in the new root needs, then execs
// chroot: proc (the dynamic loader resolves $ORIGIN through it), the
// host's /dev and, for an install, the host's resolv.conf (to reach the
// mirror). It runs in a mount namespace of its own whose mounts
// propagate nowhere: they end with it, however it ends, and an unmount
// never reaches the host's /dev (whose mounts are shared on a systemd
// host).
const chrootScript = `set -e
umask 022
root=$1 resolv=$2
shift 2
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --rbind /dev "$root/dev"
if [ "$resolv" = yes ]; then mount --bind /etc/resolv.conf "$root/etc/resolv.conf"; fi
exec chroot "$root" "$@"`

// chrootEnv is the environment of the commands run in a new root.
var chrootEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}

// chrootCommand is argv in root (see chrootScript), in a mount
// namespace of its own.
func chrootCommand(ctx context.Context, root string, resolv bool, argv []string) *exec.Cmd {
	flag := "no"
	if resolv {
		flag = "yes"
	}
	return isolated(ctx, chrootScript, append([]string{"sh", root, flag}, argv...)...)
}

// isolated runs the shell script with args ($0 first) in a mount
// namespace of its own whose mounts propagate nowhere.
func isolated(ctx context.Context, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", script}, args...)...)
	// A killed build's children (dpkg, a postinst) may hold its output
	// open: the wait for them ends.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// BuildOpts say where and how images are built.
type BuildOpts struct {
	// CacheDir holds the built OCI layouts, one per recipe digest.
	CacheDir string
	Mirror   string
	// Output receives what the build's commands print (debootstrap,
	// apt, the setup and check commands); each build also keeps it in a
	// log whose end a failure quotes.
	Output io.Writer
	// Progress receives a line per step of each build, with its time.
	Progress io.Writer
	Debootstrap
}

// cached reports whether recipe's layout is in the cache.
func cached(cacheDir string, recipe Recipe) bool {
	_, err := os.Stat(filepath.Join(layoutDir(cacheDir, recipe), "index.json"))
	return err == nil
}

// buildLocks keeps two builds of one layout (a base several images are
// built on at once) from running together in this process; across
// processes the second build's rename finds the first's layout.
var buildLocks = struct {
	sync.Mutex
	byDigest map[string]*sync.Mutex
}{byDigest: map[string]*sync.Mutex{}}

// buildLock is the lock of the builds of digest.
func buildLock(digest string) *sync.Mutex {
	buildLocks.Lock()
	defer buildLocks.Unlock()
	mu, ok := buildLocks.byDigest[digest]
	if !ok {
		mu = &sync.Mutex{}
		buildLocks.byDigest[digest] = mu
	}
	return mu
}

// build builds recipe's image, on its parent's (or its suite's base,
// built first if need be), and writes it to the cache as an OCI image
// layout, returning the layout's directory. A layout already cached for
// the recipe's digest is returned without rebuilding. The layout's
// lower layers are its parent's blobs, hard-linked: the cache holds each
// layer once.
func build(ctx context.Context, recipe Recipe, opts BuildOpts) (string, error) {
	dir := layoutDir(opts.CacheDir, recipe)
	if cached(opts.CacheDir, recipe) {
		return dir, nil
	}
	mu := buildLock(recipe.Digest)
	mu.Lock()
	defer mu.Unlock()
	if cached(opts.CacheDir, recipe) {
		return dir, nil
	}
	if recipe.parent == nil && !recipe.base {
		base := baseRecipe(recipe.Suite)
		recipe.parent = &base
	}
	var parentDir string
	if recipe.parent != nil {
		var err error
		if parentDir, err = build(ctx, *recipe.parent, opts); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(opts.CacheDir, ".build-"+recipe.Name+"-")
	if err != nil {
		return "", err
	}
	defer removeWork(work)
	logFile, err := os.Create(filepath.Join(work, "build.log"))
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	out := io.Writer(logFile)
	if opts.Output != nil {
		out = io.MultiWriter(logFile, opts.Output)
	}
	steps := &progress{w: opts.Progress, name: recipe.Name}
	layout := filepath.Join(work, "layout")
	if recipe.base {
		err = buildBase(ctx, recipe, work, layout, opts, out, steps)
	} else {
		err = buildLayer(ctx, recipe, parentDir, work, layout, opts, out, steps)
	}
	if err != nil {
		return "", withLogTail(err, logFile.Name())
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
	// Builds of the recipe's earlier versions are of no further use (the
	// images built on them hold their own links to the blobs).
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*"))
	for _, o := range old {
		if o != dir {
			_ = os.RemoveAll(o)
		}
	}
	return dir, nil
}

// removeWork removes a build's work directory, after unmounting what
// is still mounted under it (an unmount that failed): os.RemoveAll goes
// down into mount points, and the host's /dev is bind-mounted in a build.
// If something stays mounted, the directory stays too.
func removeWork(work string) {
	// mountinfo has the paths resolved.
	if resolved, err := filepath.EvalSymlinks(work); err == nil {
		work = resolved
	}
	for _, m := range mountsUnder(work) {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	if left := mountsUnder(work); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "runtimed image build: %s left in place: still mounted there: %v\n", work, left)
		return
	}
	_ = os.RemoveAll(work)
}

// mountsUnder lists the mount points under dir, deepest first.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		// Unknown: assume the worst.
		return []string{"(mountinfo unreadable: " + err.Error() + ")"}
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Octal escapes (\040 for a space) never occur in the paths
		// runtimed makes.
		if p := f[4]; strings.HasPrefix(p, dir+"/") || p == dir {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// buildBase builds a suite's base layer: debootstrap's minbase, slimmed,
// with runtimed's mount points and no word of the build host.
func buildBase(ctx context.Context, recipe Recipe, work, layout string, opts BuildOpts, out io.Writer, steps *progress) error {
	root := filepath.Join(work, "rootfs")
	deb := opts.Debootstrap
	deb.Output = out
	if err := steps.do("debootstrap "+recipe.Suite+" (minbase)", func() error {
		return deb.Run(ctx, DebootstrapOpts{Suite: recipe.Suite, Target: root, Mirror: opts.Mirror, Variant: "minbase"})
	}); err != nil {
		return err
	}
	if err := slim(root, slimPaths); err != nil {
		return fmt.Errorf("slim %s: %w", recipe.Name, err)
	}
	if err := mountPoints(root); err != nil {
		return err
	}
	if err := slim(root, runtimePaths); err != nil {
		return err
	}
	if err := neutralHostFiles(root); err != nil {
		return err
	}
	return steps.do("layer", func() error {
		empty := filepath.Join(work, "empty")
		if err := os.Mkdir(empty, 0o755); err != nil {
			return err
		}
		return writeLayout(ctx, layout, recipe, "", "", func(w io.Writer) error {
			return archive.WriteDiff(ctx, w, empty, root)
		})
	})
}

// buildLayer builds recipe's layer on its parent's layout: the parent's
// root unpacked as the lower directory of an overlay, the packages
// installed with apt in the overlay, the layer what the overlay's upper
// directory holds.
func buildLayer(ctx context.Context, recipe Recipe, parentDir, work, layout string, opts BuildOpts, out io.Writer, steps *progress) (err error) {
	lower, upper, ovl, merged := filepath.Join(work, "lower"), filepath.Join(work, "upper"), filepath.Join(work, "ovl"), filepath.Join(work, "merged")
	for _, d := range []string{lower, upper, ovl, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := steps.do("unpack "+recipe.parent.Name, func() error { return unpackLayout(ctx, parentDir, lower) }); err != nil {
		return err
	}
	// No metadata-only copies and no redirects: the upper directory
	// must hold whole files, as the layer does.
	data := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + ovl + ",metacopy=off,redirect_dir=off,index=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		return fmt.Errorf("mount the overlay for %s: %w", recipe.Name, err)
	}
	defer func() {
		if uerr := unix.Unmount(merged, unix.MNT_DETACH); uerr != nil && err == nil {
			err = fmt.Errorf("unmount the overlay of %s: %w", recipe.Name, uerr)
		}
	}()
	if len(recipe.Packages) > 0 {
		if err := steps.do(fmt.Sprintf("install %s", strings.Join(recipe.Packages, " ")), func() error {
			return install(ctx, merged, recipe.Packages, out)
		}); err != nil {
			return fmt.Errorf("install %s: %w", recipe.Name, err)
		}
	}
	for _, d := range recipe.Downloads {
		if err := steps.do("download "+d.URL, func() error { return d.provide(ctx, merged, work) }); err != nil {
			return fmt.Errorf("%s: %w", recipe.Name, err)
		}
	}
	if err := slim(merged, append(slices.Clone(slimPaths), recipe.Remove...)); err != nil {
		return fmt.Errorf("slim %s: %w", recipe.Name, err)
	}
	for _, argv := range recipe.Setup {
		if err := steps.do("setup", func() error { return chroot(ctx, merged, argv, out) }); err != nil {
			return fmt.Errorf("setup %s: %w", recipe.Name, err)
		}
	}
	if len(recipe.Check) > 0 {
		if err := steps.do("check", func() error { return chroot(ctx, merged, recipe.Check, out) }); err != nil {
			return fmt.Errorf("check %s: %w", recipe.Name, err)
		}
	}
	var version string
	if len(recipe.Version) > 0 {
		if err := steps.do("version", func() error {
			var buf bytes.Buffer
			if err := chroot(ctx, merged, recipe.Version, io.MultiWriter(&buf, out)); err != nil {
				return err
			}
			if version = findVersion(buf.String()); version == "" {
				return fmt.Errorf("%v printed no version (x.y.z): %q", recipe.Version, buf.String())
			}
			return nil
		}); err != nil {
			return fmt.Errorf("version %s: %w", recipe.Name, err)
		}
	}
	if err := slim(merged, runtimePaths); err != nil {
		return err
	}
	if err := keepHostFilesNeutral(merged); err != nil {
		return err
	}
	return steps.do("layer", func() error {
		return writeLayout(ctx, layout, recipe, version, parentDir, func(w io.Writer) error {
			return overlayDiff(ctx, w, lower, upper)
		})
	})
}

// versionPattern finds a version in what a version command printed:
// x.y.z, or x.y, not part of a longer dotted name (v20.19.2, go1.24.4
// and "25.0.5" count).
var versionPattern = regexp.MustCompile(`(?:^|[^0-9.])(\d+\.\d+(?:\.\d+)?)(?:$|[^0-9.]|\.[^0-9])`)

// findVersion is the first version in out, or "".
func findVersion(out string) string {
	if m := versionPattern.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// overlayDiff writes the layer from an overlay's upper directory alone:
// its files are the layer's, its whiteouts (and opaque directories) the
// layer's deletions of what lower holds.
func overlayDiff(ctx context.Context, w io.Writer, lower, upper string) error {
	cw := archive.NewChangeWriter(w, upper)
	if err := fs.DiffDirChanges(ctx, lower, upper, fs.DiffSourceOverlayFS, cw.HandleChange); err != nil {
		cw.Close()
		return fmt.Errorf("diff the overlay: %w", err)
	}
	return cw.Close()
}

// install installs packages with apt into root, a Debian root built by
// debootstrap (its sources.list names the mirror): root gets proc, the
// host's /dev and, for the mirror's name, the host's resolv.conf, for the
// time of the install only.
func install(ctx context.Context, root string, packages []string, out io.Writer) (err error) {
	env := append(slices.Clone(chrootEnv), "DEBIAN_FRONTEND=noninteractive")
	for _, k := range []string{"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	// No package starts a service in the build (policy-rc.d, 101:
	// "action not allowed").
	policy := filepath.Join(root, "usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	defer func() {
		if rerr := os.Remove(policy); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, argv := range [][]string{
		{"apt-get", "-q", "update"},
		append([]string{"apt-get", "-q", "-y", "--no-install-recommends", "install"}, packages...),
	} {
		cmd := chrootCommand(ctx, root, true, argv)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%v: %w", argv, err)
		}
	}
	return nil
}

// unpackLayout unpacks the layers of the layout in dir into root, in
// order, applying their deletions.
func unpackLayout(ctx context.Context, dir, root string) error {
	manifest, _, err := readManifest(dir)
	if err != nil {
		return err
	}
	for _, l := range manifest.Layers {
		f, err := os.Open(blobPath(dir, l.Digest))
		if err != nil {
			return err
		}
		_, err = archive.Apply(ctx, root, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("unpack layer %s: %w", l.Digest, err)
		}
	}
	return nil
}

// withLogTail adds the end of a failed build's log to its error.
func withLogTail(err error, log string) error {
	data, rerr := os.ReadFile(log)
	if rerr != nil || len(data) == 0 {
		return err
	}
	const tail = 2048
	if len(data) > tail {
		data = data[len(data)-tail:]
	}
	return fmt.Errorf("%w; the build's output ended with:\n%s", err, strings.TrimSpace(string(data)))
}

// progress prints a line per step of one build.
type progress struct {
	w    io.Writer
	name string
}

// do runs step f, then says how long it took, or that it failed.
func (p *progress) do(step string, f func() error) error {
	start := time.Now()
	err := f()
	if p.w != nil {
		verdict := time.Since(start).Round(100 * time.Millisecond).String()
		if err != nil {
			verdict = "failed after " + verdict
		}
		fmt.Fprintf(p.w, "%s: %s (%s)\n", p.name, step, verdict)
	}
	return err
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

// keepHostFilesNeutral puts back hostFiles in root where a package
// changed them.
func keepHostFilesNeutral(root string) error {
	for name, content := range hostFiles {
		if data, err := os.ReadFile(filepath.Join(root, name)); err == nil && string(data) == content {
			continue
		}
		return neutralHostFiles(root)
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
