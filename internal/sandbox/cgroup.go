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

// cgroupFiles are the files of a sandbox's cgroup that say what it
// used: on cgroup v2 the cgroup's directory, on v1 the cpuacct and memory
// controllers' directories. readUsage reads only those, a handful of
// small files: a library's full Stat of the cgroup (every controller's
// statistics) took most of a millisecond, twice per program.
type cgroupFiles struct {
	v2           bool
	dir          string // v2
	cpuacct, mem string // v1
}

func (r *Runner) cgroupFilesOf(path string) cgroupFiles {
	if cgroups.Mode() == cgroups.Unified {
		return cgroupFiles{v2: true, dir: filepath.Join("/sys/fs/cgroup", path)}
	}
	return cgroupFiles{cpuacct: r.v1Dir(cgroup1.Cpuacct, path), mem: r.v1Dir(cgroup1.Memory, path)}
}

// cpuFile is the one file that says the CPU time used: v2's cpu.stat,
// v1's cpuacct.usage.
func (f cgroupFiles) cpuFile() string {
	if f.v2 {
		return filepath.Join(f.dir, "cpu.stat")
	}
	if f.cpuacct == "" {
		return ""
	}
	return filepath.Join(f.cpuacct, "cpuacct.usage")
}

// readUsage reads the cgroup at path (relative to the cgroup root, as in
// the spec's cgroupsPath) on either cgroup version.
func (r *Runner) readUsage(path string) (usage, error) {
	u, err := r.cgroupFilesOf(path).usage()
	if err != nil {
		return u, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	return u, nil
}

// usage reads what it can: a file it cannot read is an error and leaves
// its figures 0, the others stand (a memory kill is seen without the CPU
// time).
func (f cgroupFiles) usage() (usage, error) {
	var u usage
	cpu, cerr := readCPUFile(f.cpuFile())
	u.CPUTimeNS = int64(cpu)
	return u, errors.Join(cerr, f.memoryUsage(&u))
}

func (f cgroupFiles) memoryUsage(u *usage) error {
	var errs []error
	read := func(file string, v *int64, optional bool) {
		n, err := readInt(file)
		if err != nil && (!optional || !errors.Is(err, os.ErrNotExist)) {
			errs = append(errs, err)
		}
		*v = n
	}
	events := func(file string, keys ...string) []uint64 {
		m, err := readKeyed(file)
		if err != nil {
			errs = append(errs, err)
		}
		out := make([]uint64, len(keys))
		for i, k := range keys {
			out[i] = m[k]
		}
		return out
	}
	if f.v2 {
		read(filepath.Join(f.dir, "memory.current"), &u.MemoryBytes, false)
		// memory.peak is absent before Linux 5.19: no peak then.
		read(filepath.Join(f.dir, "memory.peak"), &u.PeakMemoryBytes, true)
		ev := events(filepath.Join(f.dir, "memory.events"), "oom_kill", "max")
		u.OOMKills, u.MemoryLimitHits = ev[0], ev[1]
		return errors.Join(errs...)
	}
	if f.mem == "" {
		return errors.New("no cgroup v1 memory controller")
	}
	mem := func(name string) string { return filepath.Join(f.mem, name) }
	// With swap included in the limit, memsw is what the limit held;
	// without swap accounting its files are absent.
	var memswPeak int64
	read(mem("memory.memsw.max_usage_in_bytes"), &memswPeak, true)
	if memswPeak > 0 {
		u.PeakMemoryBytes = memswPeak
		read(mem("memory.memsw.usage_in_bytes"), &u.MemoryBytes, false)
	} else {
		read(mem("memory.max_usage_in_bytes"), &u.PeakMemoryBytes, false)
		read(mem("memory.usage_in_bytes"), &u.MemoryBytes, false)
	}
	var hits, memswHits int64
	read(mem("memory.failcnt"), &hits, false)
	read(mem("memory.memsw.failcnt"), &memswHits, true)
	u.MemoryLimitHits = uint64(hits + memswHits)
	u.OOMKills = events(mem("memory.oom_control"), "oom_kill")[0]
	return errors.Join(errs...)
}

// readCPUFile reads the CPU time, in nanoseconds, from cpuFile's file.
func readCPUFile(file string) (time.Duration, error) {
	if file == "" {
		return 0, errors.New("no cgroup CPU accounting found")
	}
	if strings.HasSuffix(file, "cpu.stat") {
		stat, err := readKeyed(file)
		if err != nil {
			return 0, err
		}
		us, ok := stat["usage_usec"]
		if !ok {
			return 0, fmt.Errorf("%s: no usage_usec", file)
		}
		return time.Duration(us) * time.Microsecond, nil
	}
	ns, err := readInt(file)
	return time.Duration(ns), err
}

// readInt reads a file that holds one integer.
func readInt(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// readKeyed reads a file of "key value" lines (cpu.stat, memory.events,
// memory.oom_control); lines whose value is not a number are skipped.
func readKeyed(file string) (map[string]uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// meter measures one program in a sandbox that lived before it: a pooled
// sandbox's cgroup has counted its boot. CPU time and the memory counters
// are taken as differences from the start; the memory peak is reset at
// the start where the kernel allows it (cgroup v1; v2 from Linux 6.12),
// and is the sandbox's lifetime peak otherwise.
type meter struct {
	files cgroupFiles
	base  usage
	// peak is cgroup v2's memory.peak, reset through this descriptor:
	// reads through it give the peak since the reset.
	peak *os.File
	// cpuFile is the one file that says the CPU time used: cgroup v2's
	// cpu.stat, v1's cpuacct.usage.
	cpuFile string
}

func (r *Runner) startMeter(path string) (*meter, error) {
	files := r.cgroupFilesOf(path)
	m := &meter{files: files, cpuFile: files.cpuFile()}
	var err error
	if m.base, err = files.usage(); err != nil {
		return m, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	if files.v2 {
		f, err := os.OpenFile(filepath.Join(files.dir, "memory.peak"), os.O_RDWR, 0)
		if err == nil {
			if _, err := f.WriteString("reset\n"); err != nil {
				f.Close() // before 6.12: the lifetime peak it is
			} else {
				m.peak = f
			}
		}
		return m, nil
	}
	if files.mem != "" {
		for _, name := range []string{"memory.max_usage_in_bytes", "memory.memsw.max_usage_in_bytes"} {
			// memsw is absent without swap accounting.
			_ = os.WriteFile(filepath.Join(files.mem, name), []byte("0"), 0)
		}
	}
	return m, nil
}

// read returns the program's usage: differences from the start.
func (m *meter) read() (usage, error) {
	u, err := m.files.usage()
	if err != nil {
		err = fmt.Errorf("read cgroup: %w", err)
	}
	u.CPUTimeNS = max(u.CPUTimeNS-m.base.CPUTimeNS, 0)
	u.OOMKills -= min(u.OOMKills, m.base.OOMKills)
	u.MemoryLimitHits -= min(u.MemoryLimitHits, m.base.MemoryLimitHits)
	if m.peak != nil {
		buf := make([]byte, 32)
		n, rerr := m.peak.ReadAt(buf, 0)
		if v, perr := strconv.ParseInt(strings.TrimSpace(string(buf[:n])), 10, 64); n > 0 && perr == nil {
			u.PeakMemoryBytes = v
		} else if rerr != nil {
			err = errors.Join(err, fmt.Errorf("read memory.peak: %w", rerr))
		}
		m.peak.Close()
		m.peak = nil
	}
	return u, err
}

// cpuUsed is the CPU time used since the start, read from one file: cheap
// enough to be read while the program runs.
func (m *meter) cpuUsed() (time.Duration, error) {
	used, err := readCPUFile(m.cpuFile)
	if err != nil {
		return 0, err
	}
	return used - time.Duration(m.base.CPUTimeNS), nil
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

// cpuControllerFile is the file of the cpu controller of the cgroup at
// path: v2's name on cgroup v2, v1's on v1 ("" if there is no v1 cpu
// controller).
func (r *Runner) cpuControllerFile(path, v2, v1 string) string {
	if cgroups.Mode() == cgroups.Unified {
		return filepath.Join("/sys/fs/cgroup", path, v2)
	}
	if dir := r.v1Dir(cgroup1.Cpu, path); dir != "" {
		return filepath.Join(dir, v1)
	}
	return ""
}

// setCPUBurst gives the sandbox's cgroup its CFS burst (see
// oci.WithResources). runsc sets the quota but not the burst, so runtimed
// writes it. A kernel without CFS burst (before 5.14) has no file for it;
// the sandbox then runs without one.
func (r *Runner) setCPUBurst(path string, burstUS uint64) error {
	file := r.cpuControllerFile(path, "cpu.max.burst", "cpu.cfs_burst_us")
	if file == "" {
		return nil
	}
	err := os.WriteFile(file, []byte(strconv.FormatUint(burstUS, 10)), 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// refillCPU gives the sandbox's cgroup a full CFS bucket, as an idle
// sandbox has: a period's quota and the burst. Linux refills the
// bucket by a period's quota each time the cgroup's bandwidth is set
// (tg_set_cfs_bandwidth), and lifts a throttle then; the quota is
// written back as it is, twice: quota plus burst. A program that
// follows another in the sandbox thus starts as the first did, whatever
// its predecessor used.
func (r *Runner) refillCPU(path string) error {
	file := r.cpuControllerFile(path, "cpu.max", "cpu.cfs_quota_us")
	if file == "" {
		return errors.New("no cgroup CPU controller found")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for range 2 {
		if err := os.WriteFile(file, b, 0); err != nil {
			return err
		}
	}
	return nil
}
