//go:build integration

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/pkg/oci"
	"github.com/runtimed/runtimed/tests/harness"
)

// The commands are runtimed's own, at its default limits.
var (
	languages = language.NewRegistry(config.Default())
	defaults  = config.Default()
)

func lookup(name string) *language.Language {
	l, ok := languages.Lookup(name)
	if !ok {
		panic("no language " + name)
	}
	return l
}

// stages are the commands of one hello world: a compile (if any) and a
// run; mainClass finds the run's main class after the compile.
func stages(h hello, buildDir string) (compile []string, run func() ([]string, error)) {
	l := lookup(h.language)
	entry := h.files[0].Name
	if l.Compiled() {
		compile = l.CompileCommand(entry, l.Sources([]string{entry}), defaults.CompileDefaults.MemoryBytes)
	}
	return compile, func() ([]string, error) {
		mainClass := ""
		if l.NeedsMainClass() {
			var err error
			if mainClass, err = language.FindMainClass(buildDir, entry, defaults.Sandbox.BoxBytes); err != nil {
				return nil, err
			}
		}
		return l.RunCommand(entry, mainClass, nil, defaults.Defaults.MemoryBytes), nil
	}
}

// floorWay runs the commands under chroot in the image's root file
// system, mounted read-only from containerd's snapshot, with a tmpfs at
// /box: the interpreter's own cost and nothing else. Each worker has its
// own root (the commands write to /box/.runtimed).
type floorWay struct {
	roots []string
	keys  []string
}

func (f *floorWay) name() string { return "floor (chroot)" }

func (f *floorWay) prepare(ctx context.Context, h hello, workers int) error {
	ctx = namespaces.WithNamespace(ctx, harness.Namespace)
	img, err := env.Ctr.GetImage(ctx, lookup(h.language).Image)
	if err != nil {
		return err
	}
	diffs, err := img.RootFS(ctx)
	if err != nil {
		return err
	}
	parent := identity.ChainID(diffs).String()
	sn := env.Ctr.SnapshotService("overlayfs")
	for i := 0; i < workers; i++ {
		key := fmt.Sprintf("bench-floor-%s-%d", h.language, i)
		mounts, err := sn.View(ctx, key, parent)
		if err != nil {
			return err
		}
		f.keys = append(f.keys, key)
		root, err := os.MkdirTemp(env.Dir, "floor-")
		if err != nil {
			return err
		}
		if err := mount.All(mounts, root); err != nil {
			return err
		}
		f.roots = append(f.roots, root)
		if err := unix.Mount("tmpfs", filepath.Join(root, oci.BoxDir), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64m,mode=0777"); err != nil {
			return err
		}
		// The dynamic loader finds the JDK's libraries through
		// /proc/self/exe.
		if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return err
		}
	}
	return nil
}

func (f *floorWay) run(ctx context.Context, h hello, worker int) error {
	root := f.roots[worker]
	box := filepath.Join(root, oci.BoxDir)
	entries, _ := os.ReadDir(box)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(box, e.Name()))
	}
	for _, file := range h.files {
		if err := os.WriteFile(filepath.Join(box, file.Name), []byte(file.Content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(box, ".runtimed"), 0o777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(box, ".runtimed"), 0o777); err != nil { // past the umask
		return err
	}
	l := lookup(h.language)
	chroot := func(argv []string) (string, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = oci.BoxDir
		cmd.Env = oci.ProgramEnv(l.Env)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     root,
			Credential: &syscall.Credential{Uid: defaults.Sandbox.UID, Gid: defaults.Sandbox.GID},
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	compile, run := stages(h, filepath.Join(box, ".runtimed"))
	if compile != nil {
		if out, err := chroot(compile); err != nil {
			return fmt.Errorf("compile: %v: %s", err, out)
		}
	}
	argv, err := run()
	if err != nil {
		return err
	}
	out, err := chroot(argv)
	if err != nil || out != "hello\n" {
		return fmt.Errorf("run: %v: %q", err, out)
	}
	return nil
}

func (f *floorWay) release() {
	for _, root := range f.roots {
		_ = unix.Unmount(filepath.Join(root, "proc"), unix.MNT_DETACH)
		_ = unix.Unmount(filepath.Join(root, oci.BoxDir), unix.MNT_DETACH)
		_ = mount.UnmountAll(root, unix.MNT_DETACH)
		_ = os.Remove(root)
	}
	ctx := namespaces.WithNamespace(context.Background(), harness.Namespace)
	for _, key := range f.keys {
		_ = env.Ctr.SnapshotService("overlayfs").Remove(ctx, key)
	}
	f.roots, f.keys = nil, nil
}

// ctrWay is the old design: `ctr run --rm` with runsc for each stage, a
// container created and removed each time, at the same limits, with the
// files in a host directory bound at /box.
type ctrWay struct{}

func (ctrWay) name() string                              { return "ctr run --rm" }
func (ctrWay) prepare(context.Context, hello, int) error { return nil }
func (ctrWay) release()                                  {}
func (ctrWay) run(ctx context.Context, h hello, _ int) error {
	box, err := os.MkdirTemp(env.Dir, "ctr-box-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(box)
	if err := os.Chmod(box, 0o777); err != nil {
		return err
	}
	for _, file := range h.files {
		if err := os.WriteFile(filepath.Join(box, file.Name), []byte(file.Content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(box, ".runtimed"), 0o777); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(box, ".runtimed"), 0o777); err != nil {
		return err
	}
	l := lookup(h.language)
	ctr := func(limits config.Limits, argv []string) (string, error) {
		id := make([]byte, 6)
		_, _ = rand.Read(id)
		args := []string{"--address", env.Containerd, "--namespace", harness.Namespace, "run", "--rm",
			"--runtime", defaults.Runtime.Type, "--runc-binary", defaults.Runtime.Binary,
			"--read-only", "--cwd", oci.BoxDir,
			"--mount", "type=bind,src=" + box + ",dst=" + oci.BoxDir + ",options=rbind:rw",
			"--memory-limit", fmt.Sprint(limits.MemoryBytes),
			"--cpu-quota", fmt.Sprint(int64(limits.CPU * float64(oci.CPUPeriod))), "--cpu-period", fmt.Sprint(oci.CPUPeriod),
		}
		for _, e := range oci.ProgramEnv(l.Env) {
			args = append(args, "--env", e)
		}
		args = append(args, l.Image, "bench-ctr-"+hex.EncodeToString(id))
		args = append(args, argv...)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := exec.CommandContext(cctx, "ctr", args...).CombinedOutput()
		return string(out), err
	}
	compile, run := stages(h, filepath.Join(box, ".runtimed"))
	if compile != nil {
		if out, err := ctr(defaults.CompileDefaults, compile); err != nil {
			return fmt.Errorf("compile: %v: %s", err, out)
		}
	}
	argv, err := run()
	if err != nil {
		return err
	}
	out, err := ctr(defaults.Defaults, argv)
	if err != nil || out != "hello\n" {
		return fmt.Errorf("run: %v: %q", err, out)
	}
	return nil
}
