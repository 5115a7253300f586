package sandbox

import (
	"fmt"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
)

// usage is what a sandbox's cgroup says it used. It is read after the
// sandbox's processes have exited and before the runtime removes the
// cgroup.
type usage struct {
	PeakMemoryBytes int64
	CPUTimeNS       int64
	// OOMKills counts kills by the kernel's OOM killer inside the cgroup:
	// the evidence for a memory_limit verdict.
	OOMKills uint64
	// MemoryLimitHits counts allocations that failed at the limit (v1
	// failcnt, v2 "max" events).
	MemoryLimitHits uint64
}

// readUsage reads the cgroup at path (relative to the cgroup root, as in
// the spec's cgroupsPath) on either cgroup version.
func readUsage(path string) (usage, error) {
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(path)
		if err != nil {
			return usage{}, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		st, err := m.Stat()
		if err != nil {
			return usage{}, fmt.Errorf("stat cgroup %s: %w", path, err)
		}
		var u usage
		if st.Memory != nil {
			u.PeakMemoryBytes = int64(st.Memory.MaxUsage)
		}
		if st.CPU != nil {
			u.CPUTimeNS = int64(st.CPU.UsageUsec) * 1000
		}
		if st.MemoryEvents != nil {
			u.OOMKills = st.MemoryEvents.OomKill
			u.MemoryLimitHits = st.MemoryEvents.Max
		}
		return u, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if err != nil {
		return usage{}, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	st, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return usage{}, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	var u usage
	if st.Memory != nil {
		// With swap included in the limit, memsw is what the limit held.
		if st.Memory.Swap != nil && st.Memory.Swap.Max > 0 {
			u.PeakMemoryBytes = int64(st.Memory.Swap.Max)
		} else if st.Memory.Usage != nil {
			u.PeakMemoryBytes = int64(st.Memory.Usage.Max)
		}
		if st.Memory.Usage != nil {
			u.MemoryLimitHits = st.Memory.Usage.Failcnt
		}
		if st.Memory.Swap != nil {
			u.MemoryLimitHits += st.Memory.Swap.Failcnt
		}
	}
	if st.MemoryOomControl != nil {
		u.OOMKills = st.MemoryOomControl.OomKill
	}
	if st.CPU != nil && st.CPU.Usage != nil {
		u.CPUTimeNS = int64(st.CPU.Usage.Total)
	}
	return u, nil
}
