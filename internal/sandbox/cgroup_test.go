package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupUsageV2(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\n",
		"memory.current": "4096\n",
		"memory.peak":    "8192\n",
		"memory.events":  "low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n",
	})
	f := cgroupFiles{v2: true, dir: dir}
	u, err := f.usage()
	if err != nil {
		t.Fatal(err)
	}
	want := usage{MemoryBytes: 4096, PeakMemoryBytes: 8192, CPUTimeNS: 1_500_000, OOMKills: 1, MemoryLimitHits: 7}
	if u != want {
		t.Fatalf("usage %+v, want %+v", u, want)
	}
	// Before Linux 5.19 there is no memory.peak: no peak is known.
	if err := os.Remove(filepath.Join(dir, "memory.peak")); err != nil {
		t.Fatal(err)
	}
	if u, err = f.usage(); err != nil || u.PeakMemoryBytes != 0 || u.MemoryBytes != 4096 {
		t.Fatalf("without memory.peak: %+v, %v; want no peak, the usage 4096", u, err)
	}
	if d, err := readCPUFile(f.cpuFile()); err != nil || d != 1500*time.Microsecond {
		t.Fatalf("cpu %v, %v; want 1.5ms", d, err)
	}
	// A file that cannot be read is an error; what could be read stands.
	if err := os.Remove(filepath.Join(dir, "memory.current")); err != nil {
		t.Fatal(err)
	}
	if u, err := f.usage(); err == nil || u.OOMKills != 1 || u.CPUTimeNS != 1_500_000 {
		t.Fatalf("without memory.current: %+v, %v; want an error, and the OOM kill and CPU time", u, err)
	}
}

func TestCgroupUsageV1(t *testing.T) {
	cpuacct, mem := t.TempDir(), t.TempDir()
	writeFiles(t, cpuacct, map[string]string{"cpuacct.usage": "123456789\n"})
	writeFiles(t, mem, map[string]string{
		"memory.usage_in_bytes":           "1000\n",
		"memory.max_usage_in_bytes":       "2000\n",
		"memory.memsw.usage_in_bytes":     "1100\n",
		"memory.memsw.max_usage_in_bytes": "2100\n",
		"memory.failcnt":                  "3\n",
		"memory.memsw.failcnt":            "4\n",
		"memory.oom_control":              "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
	})
	f := cgroupFiles{cpuacct: cpuacct, mem: mem}
	u, err := f.usage()
	if err != nil {
		t.Fatal(err)
	}
	// With swap accounting, memsw is what the limit held.
	want := usage{MemoryBytes: 1100, PeakMemoryBytes: 2100, CPUTimeNS: 123456789, OOMKills: 2, MemoryLimitHits: 7}
	if u != want {
		t.Fatalf("with memsw: usage %+v, want %+v", u, want)
	}
	// Without swap accounting, the memsw files are absent.
	for _, name := range []string{"memory.memsw.usage_in_bytes", "memory.memsw.max_usage_in_bytes", "memory.memsw.failcnt"} {
		if err := os.Remove(filepath.Join(mem, name)); err != nil {
			t.Fatal(err)
		}
	}
	want = usage{MemoryBytes: 1000, PeakMemoryBytes: 2000, CPUTimeNS: 123456789, OOMKills: 2, MemoryLimitHits: 3}
	if u, err = f.usage(); err != nil || u != want {
		t.Fatalf("without memsw: usage %+v, %v; want %+v", u, err, want)
	}
	if _, err := (cgroupFiles{cpuacct: cpuacct}).usage(); err == nil {
		t.Fatal("no error without a memory controller")
	}
	if u, err := (cgroupFiles{mem: mem}).usage(); err == nil || u.OOMKills != 2 {
		t.Fatalf("without a cpuacct controller: %+v, %v; want an error, and the OOM kills", u, err)
	}
}
