package oci

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/runtimed/runtimed/internal/agent"
)

// sandboxSpec builds a spec the way the runner does, on containerd's
// default spec, without containerd.
func sandboxSpec(t *testing.T, opts ...coci.SpecOpts) *coci.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "runtimed")
	var s coci.Spec
	c := &containers.Container{ID: "rt-test"}
	all := append([]coci.SpecOpts{coci.WithDefaultSpec()}, opts...)
	if err := coci.ApplyOpts(ctx, nil, c, &s, all...); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return &s
}

func fullSandbox(t *testing.T) *coci.Spec {
	return sandboxSpec(t,
		// A host namespace first, to see that isolation replaces it.
		coci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/1/ns/net"}),
		WithIsolation(),
		WithHardening(Hardening{UID: 65534, GID: 65534, MaxFileBytes: 1 << 20, OpenFiles: 64}),
		WithResources(Resources{MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}),
		WithBox("/var/lib/runtimed/runs/x/rt-1", 16<<20),
		WithAgent("/usr/lib/runtimed/runtimed-init"),
	)
}

func TestIsolationHasNewEmptyNetworkAndNoHostNamespaces(t *testing.T) {
	s := fullSandbox(t)
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		if ns.Path != "" {
			t.Errorf("namespace %s joins %s", ns.Type, ns.Path)
		}
		types = append(types, ns.Type)
	}
	for _, want := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.PIDNamespace, specs.MountNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if !slices.Contains(types, want) {
			t.Errorf("no new %s namespace: %v", want, types)
		}
	}
}

func TestResources(t *testing.T) {
	tests := []struct {
		name      string
		r         Resources
		wantQuota int64
	}{
		{"half a core", Resources{MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}, 50_000},
		{"two cores", Resources{MemoryBytes: 64 << 20, CPU: 2, Pids: 8}, 200_000},
		{"a sliver", Resources{MemoryBytes: 64 << 20, CPU: 0.011, Pids: 1}, 1_100},
		{"room for the agent", Resources{MemoryBytes: 64 << 20, CPU: 1, Pids: 33}, 100_000},
		{"no room for the agent", Resources{MemoryBytes: 64 << 20, CPU: 1, Pids: 32}, 100_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sandboxSpec(t, WithResources(tt.r))
			res := s.Linux.Resources
			if res.Memory == nil || *res.Memory.Limit != tt.r.MemoryBytes {
				t.Fatalf("memory limit %+v", res.Memory)
			}
			// Swap included: memory+swap equals memory.
			if res.Memory.Swap == nil || *res.Memory.Swap != tt.r.MemoryBytes {
				t.Fatalf("memory+swap %v, want %d", res.Memory.Swap, tt.r.MemoryBytes)
			}
			if *res.CPU.Quota != tt.wantQuota || *res.CPU.Period != CPUPeriod {
				t.Fatalf("cpu quota %d period %d, want %d/%d", *res.CPU.Quota, *res.CPU.Period, tt.wantQuota, CPUPeriod)
			}
			// The program's tasks are held by RLIMIT_NPROC inside gVisor; the
			// host cgroup bounds gVisor's own tasks, above that.
			if res.Pids == nil || *res.Pids.Limit != HostPids(tt.r.Pids) || HostPids(tt.r.Pids) <= tt.r.Pids {
				t.Fatalf("host pids %+v, want %d", res.Pids, HostPids(tt.r.Pids))
			}
			var nproc *specs.POSIXRlimit
			for i := range s.Process.Rlimits {
				if s.Process.Rlimits[i].Type == "RLIMIT_NPROC" {
					nproc = &s.Process.Rlimits[i]
				}
			}
			// The program's limit, without its first process, is the spec's
			// where it leaves runtimed-init room; else the spec's is larger
			// and the program's goes to runtimed-init in its environment.
			wantNproc, wantEnv := uint64(tt.r.Pids-1), ""
			if tt.r.Pids-1 < agentTasks {
				wantNproc, wantEnv = AgentNproc(tt.r.Pids), agent.ProgramNprocEnv+"="+strconv.FormatInt(tt.r.Pids-1, 10)
			}
			if nproc == nil || nproc.Hard != wantNproc || nproc.Soft != nproc.Hard || nproc.Hard < agentTasks {
				t.Fatalf("RLIMIT_NPROC %+v, want %d", nproc, wantNproc)
			}
			var env []string
			for _, e := range s.Process.Env {
				if strings.HasPrefix(e, agent.ProgramNprocEnv+"=") {
					env = append(env, e)
				}
			}
			if wantEnv == "" && len(env) != 0 || wantEnv != "" && !slices.Equal(env, []string{wantEnv}) {
				t.Fatalf("program limit in the agent's environment %v, want %q", env, wantEnv)
			}
		})
	}
}

func TestResourcesRefuseUnset(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "runtimed")
	for _, r := range []Resources{{CPU: 1, Pids: 1}, {MemoryBytes: 1 << 20, Pids: 1}, {MemoryBytes: 1 << 20, CPU: 1}} {
		var s coci.Spec
		err := coci.ApplyOpts(ctx, nil, &containers.Container{ID: "x"}, &s, coci.WithDefaultSpec(), WithResources(r))
		if err == nil {
			t.Errorf("%+v accepted: a zero limit would mean no limit", r)
		}
	}
}

func TestHardening(t *testing.T) {
	s := sandboxSpec(t, WithHardening(Hardening{UID: 65534, GID: 65534, MaxFileBytes: 1 << 20, OpenFiles: 64}))
	p := s.Process
	if p.User.UID != 65534 || p.User.GID != 65534 || len(p.User.AdditionalGids) != 0 {
		t.Errorf("user %+v, want 65534:65534 and no extra groups", p.User)
	}
	c := p.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted, "inheritable": c.Inheritable, "ambient": c.Ambient} {
		if len(set) != 0 {
			t.Errorf("%s capabilities %v, want none", name, set)
		}
	}
	if !p.NoNewPrivileges {
		t.Error("no_new_privileges is off")
	}
	if !s.Root.Readonly {
		t.Error("root is writable")
	}
	want := map[string]uint64{"RLIMIT_CORE": 0, "RLIMIT_FSIZE": 1 << 20, "RLIMIT_NOFILE": 64}
	for _, rl := range p.Rlimits {
		if w, ok := want[rl.Type]; ok {
			if rl.Hard != w || rl.Soft != w {
				t.Errorf("%s = %d/%d, want %d", rl.Type, rl.Soft, rl.Hard, w)
			}
			delete(want, rl.Type)
		}
	}
	if len(want) > 0 {
		t.Errorf("rlimits missing: %v", want)
	}
}

func TestHardeningRefusesRoot(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), "runtimed")
	var s coci.Spec
	err := coci.ApplyOpts(ctx, nil, &containers.Container{ID: "x"}, &s, coci.WithDefaultSpec(), WithHardening(Hardening{UID: 0, GID: 0}))
	if err == nil {
		t.Fatal("root accepted")
	}
}

func TestBox(t *testing.T) {
	s := fullSandbox(t)
	if s.Process.Cwd != BoxDir {
		t.Errorf("cwd %q", s.Process.Cwd)
	}
	var box, tmp *specs.Mount
	for i := range s.Mounts {
		switch s.Mounts[i].Destination {
		case BoxDir:
			box = &s.Mounts[i]
		case "/tmp":
			tmp = &s.Mounts[i]
		}
	}
	if box == nil || box.Source != "/var/lib/runtimed/runs/x/rt-1" || !slices.Contains(box.Options, "rw") ||
		!slices.Contains(box.Options, "nosuid") || !slices.Contains(box.Options, "nodev") {
		t.Errorf("box mount %+v", box)
	}
	if tmp == nil || tmp.Type != "tmpfs" || !slices.Contains(tmp.Options, "size=16777216") || !slices.Contains(tmp.Options, "nosuid") {
		t.Errorf("tmp mount %+v", tmp)
	}
}

func TestAgent(t *testing.T) {
	s := fullSandbox(t)
	p := s.Process
	if !slices.Equal(p.Args, []string{AgentPath}) {
		t.Errorf("args %v", p.Args)
	}
	if p.User.UID != 0 || p.User.GID != 0 || len(p.User.AdditionalGids) != 0 {
		t.Errorf("agent user %+v, want the sandbox's root and no extra groups", p.User)
	}
	c := p.Capabilities
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !slices.Equal(set, AgentCapabilities) {
			t.Errorf("%s capabilities %v, want %v", name, set, AgentCapabilities)
		}
	}
	// The agent's environment is a PATH, and the program's RLIMIT_NPROC
	// where it is not the agent's, whichever of WithResources and
	// WithAgent came first.
	if want := []string{"PATH=/usr/bin:/bin"}; !slices.Equal(p.Env, want) {
		t.Errorf("agent env %v, want %v", p.Env, want)
	}
	before := sandboxSpec(t, WithResources(Resources{MemoryBytes: 128 << 20, CPU: 0.5, Pids: 4}), WithAgent("/usr/lib/runtimed/runtimed-init"))
	if want := []string{"PATH=/usr/bin:/bin", agent.ProgramNprocEnv + "=3"}; !slices.Equal(before.Process.Env, want) {
		t.Errorf("agent env with WithResources before WithAgent %v, want %v", before.Process.Env, want)
	}
	after := sandboxSpec(t, WithAgent("/usr/lib/runtimed/runtimed-init"), WithResources(Resources{MemoryBytes: 128 << 20, CPU: 0.5, Pids: 8}))
	if want := []string{"PATH=/usr/bin:/bin", agent.ProgramNprocEnv + "=7"}; !slices.Equal(after.Process.Env, want) {
		t.Errorf("agent env with WithResources after WithAgent %v, want %v", after.Process.Env, want)
	}
	if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
		t.Errorf("inheritable %v ambient %v, want none", c.Inheritable, c.Ambient)
	}
	// The hardening under it holds.
	if !p.NoNewPrivileges || !s.Root.Readonly {
		t.Errorf("no_new_privileges %v, read-only root %v", p.NoNewPrivileges, s.Root.Readonly)
	}
	var m *specs.Mount
	for i := range s.Mounts {
		if s.Mounts[i].Destination == AgentPath {
			m = &s.Mounts[i]
		}
	}
	if m == nil || m.Source != "/usr/lib/runtimed/runtimed-init" || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "nosuid") {
		t.Errorf("agent mount %+v", m)
	}
	if err := coci.ApplyOpts(context.Background(), nil, &containers.Container{ID: "x"}, &coci.Spec{}, coci.WithDefaultSpec(), WithAgent("")); err == nil {
		t.Error("an agent without a path was accepted")
	}
}

func TestProgramEnv(t *testing.T) {
	env := ProgramEnv([]string{"A=1"})
	for _, want := range []string{"HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8", "A=1"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	if env[len(env)-1] != "A=1" {
		t.Errorf("the language's variables come last (they win): %v", env)
	}
}
