// Package oci owns the OCI runtime spec of a runtimed sandbox: isolation
// (no network, no host namespaces), hardening (non-root, no capabilities,
// no new privileges, read-only root, rlimits, a seccomp profile) and
// cgroup limits. Its options are containerd oci.SpecOpts, so they compose
// with containerd's.
package oci

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runtimed/runtimed/internal/agent"
)

// BoxDir is where the request's files are, and the working directory.
const BoxDir = "/box"

// CPUPeriod is the CFS period the CPU quota is expressed in (100 ms).
const CPUPeriod uint64 = 100_000

// Resources are the cgroup limits of one sandbox.
type Resources struct {
	MemoryBytes int64
	CPU         float64 // cores, fractional
	Pids        int64
}

// Hardening is what every sandbox process runs under.
type Hardening struct {
	UID, GID uint32
	// MaxFileBytes is RLIMIT_FSIZE: the largest file the program may write.
	MaxFileBytes uint64
	// OpenFiles is RLIMIT_NOFILE.
	OpenFiles uint64
}

// WithIsolation gives the sandbox new pid, ipc, uts, mount and network
// namespaces, none with a path: a path would join an existing (host)
// namespace, and a network namespace without one is new and empty, with no
// interface but loopback.
func WithIsolation() coci.SpecOpts {
	return func(_ context.Context, _ coci.Client, _ *containers.Container, s *coci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		want := []specs.LinuxNamespaceType{
			specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace,
			specs.MountNamespace, specs.NetworkNamespace,
		}
		ns := make([]specs.LinuxNamespace, 0, len(want))
		for _, t := range want {
			ns = append(ns, specs.LinuxNamespace{Type: t})
		}
		s.Linux.Namespaces = ns
		return nil
	}
}

// WithResources sets the limits: memory with swap included (the
// memory+swap limit equals the memory limit, so no swap), a CFS quota for
// the fractional CPU count, and the pids limit.
//
// The CPU quota comes with a CFS burst of one period's quota: a sandbox
// that was idle (a pooled one, waiting for its program) may run ahead of
// its share for that much CPU time — 50 ms at 0.5 CPU — so a short
// program is not throttled in the middle of its start-up; over any longer
// stretch the share holds.
//
// Under gVisor the program's processes and threads are not host tasks:
// the sandbox kernel enforces the pids limit as RLIMIT_NPROC of the
// sandbox user (it counts threads, as Linux does). The host cgroup's pids
// limit bounds gVisor's own host threads and stub processes (one per
// sandboxed process under systrap), so it is HostPids(r.Pids).
//
// The spec's RLIMIT_NPROC is runtimed-init's, and gVisor checks it at
// every task runtimed-init makes: its own Go threads and the program's
// first process, counted as root's. Where the program's limit,
// ProgramNproc(r.Pids), leaves room for those (agentTasks), it is the
// spec's and the program inherits it. A smaller one would leave the agent
// no thread to start the program with, so the spec's is then
// AgentNproc(r.Pids) and the program's goes to runtimed-init in its
// environment (agent.ProgramNprocEnv): it starts the program through an
// exec of itself that takes that limit. That exec costs the program's
// start about 25 ms at 0.5 CPU, so the larger limits, the defaults among
// them, do without it.
func WithResources(r Resources) coci.SpecOpts {
	return func(ctx context.Context, c coci.Client, ctr *containers.Container, s *coci.Spec) error {
		if r.MemoryBytes <= 0 || r.CPU <= 0 || r.Pids <= 0 {
			return fmt.Errorf("sandbox resources must all be positive: %+v", r)
		}
		quota := int64(math.Ceil(r.CPU * float64(CPUPeriod)))
		if err := coci.Compose(
			coci.WithMemoryLimit(uint64(r.MemoryBytes)),
			coci.WithMemorySwap(r.MemoryBytes),
			coci.WithCPUCFS(quota, CPUPeriod),
			coci.WithPidsLimit(HostPids(r.Pids)),
		)(ctx, c, ctr, s); err != nil {
			return err
		}
		if nproc := ProgramNproc(r.Pids); nproc >= agentTasks {
			setRlimit(s, "RLIMIT_NPROC", nproc)
		} else {
			setRlimit(s, "RLIMIT_NPROC", AgentNproc(r.Pids))
			setEnv(s, agent.ProgramNprocEnv, strconv.FormatUint(nproc, 10))
		}
		burst := CPUBurstUS(r.CPU)
		s.Linux.Resources.CPU.Burst = &burst
		return nil
	}
}

// CPUBurstUS is the CFS burst of a sandbox with cpu cores: one period's
// quota, in microseconds.
func CPUBurstUS(cpu float64) uint64 { return uint64(math.Ceil(cpu * float64(CPUPeriod))) }

// ProgramNproc is RLIMIT_NPROC for a program that may have pids tasks.
// The program's first process is started by runtimed-init as root and
// becomes the sandbox user after, and gVisor goes on counting it as
// root's: the limit holds the tasks the program makes besides it.
func ProgramNproc(pids int64) uint64 { return uint64(max(pids-1, 0)) }

// AgentNproc is runtimed-init's RLIMIT_NPROC in a sandbox whose
// program's own limit is too small for runtimed-init: room for its tasks
// above the program's limit, which runtimed-init can only lower to.
func AgentNproc(pids int64) uint64 { return ProgramNproc(pids) + agentTasks }

// agentTasks is the room runtimed-init needs under its RLIMIT_NPROC: its
// Go threads (about 5; more only while its goroutines are in blocking
// system calls, and it has 4) and the program's first process, with a
// wide margin.
const agentTasks = 32

// setEnv sets (or replaces) one variable of the process's environment.
func setEnv(s *coci.Spec, name, value string) {
	kv := name + "=" + value
	for i, e := range s.Process.Env {
		if strings.HasPrefix(e, name+"=") {
			s.Process.Env[i] = kv
			return
		}
	}
	s.Process.Env = append(s.Process.Env, kv)
}

// HostPids is the host pids cgroup limit of a sandbox whose program may
// have pids tasks: room for systrap's stub process and threads per task,
// for gVisor's own threads and for runtimed-init's. gVisor's kernel panics
// when the host refuses it a thread, so the room is generous: a 64-task
// fork bomb holds about 260 host tasks.
func HostPids(pids int64) int64 { return 4*pids + 256 }

// setRlimit sets (or replaces) one rlimit of the process.
func setRlimit(s *coci.Spec, typ string, v uint64) {
	for i := range s.Process.Rlimits {
		if s.Process.Rlimits[i].Type == typ {
			s.Process.Rlimits[i].Hard, s.Process.Rlimits[i].Soft = v, v
			return
		}
	}
	s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: typ, Hard: v, Soft: v})
}

// WithHardening runs the process as a non-root user with no capabilities
// and no new privileges, on a read-only root, with no core dumps and
// bounded file size and descriptors.
func WithHardening(h Hardening) coci.SpecOpts {
	return func(ctx context.Context, c coci.Client, ctr *containers.Container, s *coci.Spec) error {
		if h.UID == 0 || h.GID == 0 {
			return fmt.Errorf("sandbox user must not be root (uid %d, gid %d)", h.UID, h.GID)
		}
		if err := coci.Compose(
			coci.WithUIDGID(h.UID, h.GID),
			coci.WithCapabilities(nil),
			coci.WithNoNewPrivileges,
			coci.WithRootFSReadonly(),
		)(ctx, c, ctr, s); err != nil {
			return err
		}
		s.Process.User.AdditionalGids = nil
		s.Process.Capabilities = &specs.LinuxCapabilities{}
		setRlimit(s, "RLIMIT_CORE", 0)
		setRlimit(s, "RLIMIT_FSIZE", h.MaxFileBytes)
		setRlimit(s, "RLIMIT_NOFILE", h.OpenFiles)
		return nil
	}
}

// WithBox mounts hostDir, a size-capped directory holding the request's
// files, read-write at /box and makes it the working directory; /tmp is a
// private tmpfs of tmpBytes. Neither allows setuid binaries or devices.
func WithBox(hostDir string, tmpBytes int64) coci.SpecOpts {
	return func(ctx context.Context, c coci.Client, ctr *containers.Container, s *coci.Spec) error {
		return coci.Compose(
			coci.WithoutMounts(BoxDir, "/tmp"),
			coci.WithMounts([]specs.Mount{
				{
					Destination: BoxDir,
					Type:        "bind",
					Source:      hostDir,
					Options:     []string{"rbind", "rw", "nosuid", "nodev"},
				},
				{
					Destination: "/tmp",
					Type:        "tmpfs",
					Source:      "tmpfs",
					Options: []string{"nosuid", "nodev", "mode=1777",
						"size=" + strconv.FormatInt(tmpBytes, 10)},
				},
			}),
			coci.WithProcessCwd(BoxDir),
		)(ctx, c, ctr, s)
	}
}

// Where runtimed-init, the sandbox's first process, is inside a sandbox.
const (
	AgentDir  = "/.runtimed"
	AgentPath = AgentDir + "/init"
)

// AgentCapabilities are all the agent keeps: to start the program as the
// sandbox user (which drops them for the program) and to kill what the
// program leaves when it exits.
var AgentCapabilities = []string{"CAP_SETUID", "CAP_SETGID", "CAP_KILL"}

// WithAgent makes runtimed-init, mounted read-only from hostPath, the
// sandbox's first process. It runs as root of the sandbox's own user
// namespace with AgentCapabilities and nothing else, under the spec's
// hardening otherwise (no new privileges, read-only root, rlimits); the
// program it starts runs as the hardening's user with no capabilities.
// Apply it after WithHardening.
func WithAgent(hostPath string) coci.SpecOpts {
	return func(ctx context.Context, c coci.Client, ctr *containers.Container, s *coci.Spec) error {
		if hostPath == "" {
			return fmt.Errorf("sandbox agent: no runtimed-init path")
		}
		if err := coci.Compose(
			coci.WithoutMounts(AgentPath),
			coci.WithMounts([]specs.Mount{{
				Destination: AgentPath,
				Type:        "bind",
				Source:      hostPath,
				Options:     []string{"rbind", "ro", "nosuid", "nodev"},
			}}),
			coci.WithProcessArgs(AgentPath),
			coci.WithUIDGID(0, 0),
		)(ctx, c, ctr, s); err != nil {
			return err
		}
		s.Process.User.AdditionalGids = nil
		// The agent's environment is a PATH and what the other options
		// told it (WithResources: the program's RLIMIT_NPROC).
		env := []string{"PATH=/usr/bin:/bin"}
		for _, e := range s.Process.Env {
			if strings.HasPrefix(e, agent.ProgramNprocEnv+"=") {
				env = append(env, e)
			}
		}
		s.Process.Env = env
		caps := func() []string { return append([]string(nil), AgentCapabilities...) }
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps(), Effective: caps(), Permitted: caps()}
		return nil
	}
}

// ProgramEnv is the environment of a program: a PATH, HOME and TMPDIR in
// the writable /tmp, a UTF-8 locale, then the language's own variables.
func ProgramEnv(extra []string) []string {
	return append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/tmp", "LANG=C.UTF-8", "TMPDIR=/tmp",
	}, extra...)
}
