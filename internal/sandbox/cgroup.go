package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
)

// usage is what a sandbox's cgroup says it used. It is read after the
// sandbox's processes have exited and before the runtime removes the
// cgroup.
type usage struct {
	MemoryBytes     int64 // now
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
			u.MemoryBytes = int64(st.Memory.Usage)
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
			u.MemoryBytes = int64(st.Memory.Swap.Usage)
		} else if st.Memory.Usage != nil {
			u.PeakMemoryBytes = int64(st.Memory.Usage.Max)
			u.MemoryBytes = int64(st.Memory.Usage.Usage)
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

// meter measures one program in a sandbox that lived before it: a pooled
// sandbox's cgroup has counted its boot. CPU time and the memory counters
// are taken as differences from the start; the memory peak is reset at
// the start where the kernel allows it (cgroup v1; v2 from Linux 6.12),
// and is the sandbox's lifetime peak otherwise.
type meter struct {
	path string
	base usage
	// peak is cgroup v2's memory.peak, reset through this descriptor:
	// reads through it give the peak since the reset.
	peak *os.File
	// cpuFile is the one file that says the CPU time used: cgroup v2's
	// cpu.stat, v1's cpuacct.usage.
	cpuFile string
}

func (r *Runner) startMeter(path string) (*meter, error) {
	m := &meter{path: path}
	var err error
	if m.base, err = readUsage(path); err != nil {
		return m, err
	}
	if cgroups.Mode() == cgroups.Unified {
		m.cpuFile = filepath.Join("/sys/fs/cgroup", path, "cpu.stat")
		f, err := os.OpenFile(filepath.Join("/sys/fs/cgroup", path, "memory.peak"), os.O_RDWR, 0)
		if err == nil {
			if _, err := f.WriteString("reset\n"); err != nil {
				f.Close() // before 6.12: the lifetime peak it is
			} else {
				m.peak = f
			}
		}
		return m, nil
	}
	if dir := r.v1Dir(cgroup1.Cpuacct, path); dir != "" {
		m.cpuFile = filepath.Join(dir, "cpuacct.usage")
	}
	if dir := r.v1Dir(cgroup1.Memory, path); dir != "" {
		for _, name := range []string{"memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes"} {
			// memsw is absent without swap accounting.
			_ = os.WriteFile(filepath.Join(dir, name), []byte("0"), 0)
		}
	}
	return m, nil
}

// read returns the program's usage: differences from the start.
func (m *meter) read() (usage, error) {
	u, err := readUsage(m.path)
	if err != nil {
		return usage{}, err
	}
	u.CPUTimeNS -= m.base.CPUTimeNS
	u.OOMKills -= min(u.OOMKills, m.base.OOMKills)
	u.MemoryLimitHits -= min(u.MemoryLimitHits, m.base.MemoryLimitHits)
	if m.peak != nil {
		buf := make([]byte, 32)
		n, rerr := m.peak.ReadAt(buf, 0)
		if v, perr := strconv.ParseInt(strings.TrimSpace(string(buf[:n])), 10, 64); n > 0 && perr == nil {
			u.PeakMemoryBytes = v
		} else if rerr != nil {
			err = fmt.Errorf("read memory.peak: %w", rerr)
		}
		m.peak.Close()
		m.peak = nil
	}
	return u, err
}

// cpuUsed is the CPU time used since the start, read from one file: cheap
// enough to be read while the program runs.
func (m *meter) cpuUsed() (time.Duration, error) {
	if m.cpuFile == "" {
		return 0, errors.New("no cgroup CPU accounting found")
	}
	b, err := os.ReadFile(m.cpuFile)
	if err != nil {
		return 0, err
	}
	var ns int64
	if strings.HasSuffix(m.cpuFile, "cpu.stat") {
		// "usage_usec N" is the first line.
		line, _, _ := strings.Cut(string(b), "\n")
		v, ok := strings.CutPrefix(line, "usage_usec ")
		us, perr := strconv.ParseInt(v, 10, 64)
		if !ok || perr != nil {
			return 0, fmt.Errorf("%s: no usage_usec", m.cpuFile)
		}
		ns = us * 1000
	} else if ns, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
		return 0, fmt.Errorf("%s: %w", m.cpuFile, err)
	}
	return time.Duration(ns - m.base.CPUTimeNS), nil
}

// memoryNow reads the memory the cgroup at path holds now from the one
// file that says it (as readUsage counts it: v1 with swap where swap is
// accounted): cheap enough to be read in a loop.
func (r *Runner) memoryNow(path string) (int64, error) {
	var files []string
	if cgroups.Mode() == cgroups.Unified {
		files = []string{filepath.Join("/sys/fs/cgroup", path, "memory.current")}
	} else if dir := r.v1Dir(cgroup1.Memory, path); dir != "" {
		files = []string{filepath.Join(dir, "memory.memsw.usage_in_bytes"), filepath.Join(dir, "memory.usage_in_bytes")}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // memsw without swap accounting
		}
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	return 0, errors.New("no cgroup memory accounting found")
}

// v1Controllers finds the cgroup v1 controllers' mounts once.
type v1Controllers struct {
	once  sync.Once
	paths map[cgroup1.Name]interface{ Path(string) string }
}

// v1Dir is the directory of the cgroup at path under the cgroup v1
// controller name, or "" if it cannot be found.
func (r *Runner) v1Dir(name cgroup1.Name, path string) string {
	r.v1.once.Do(func() {
		r.v1.paths = map[cgroup1.Name]interface{ Path(string) string }{}
		subs, err := cgroup1.Default()
		if err != nil {
			return
		}
		for _, s := range subs {
			if p, ok := s.(interface{ Path(string) string }); ok {
				r.v1.paths[s.Name()] = p
			}
		}
	})
	if c := r.v1.paths[name]; c != nil {
		return c.Path(path)
	}
	return ""
}

// setCPUBurst gives the sandbox's cgroup its CFS burst (see
// oci.WithResources). runsc sets the quota but not the burst, so runtimed
// writes it. A kernel without CFS burst (before 5.14) has no file for it;
// the sandbox then runs without one.
func (r *Runner) setCPUBurst(path string, burstUS uint64) error {
	var file string
	if cgroups.Mode() == cgroups.Unified {
		file = filepath.Join("/sys/fs/cgroup", path, "cpu.max.burst")
	} else if dir := r.v1Dir(cgroup1.Cpu, path); dir != "" {
		file = filepath.Join(dir, "cpu.cfs_burst_us")
	}
	if file == "" {
		return nil
	}
	err := os.WriteFile(file, []byte(strconv.FormatUint(burstUS, 10)), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
