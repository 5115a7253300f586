//go:build integration

// Package bench measures hello worlds, side by side in one run on one
// machine, four ways: (a) the floor, the bare interpreter or compiler in
// the image's root file system under chroot, with no sandbox; (b) the old
// design, one container per execution created and removed by `ctr run
// --rm` with runsc, through the same containerd; (c) runtimed with its warm
// pools off (every request creates its sandbox); (d) runtimed with its
// warm pools. At each concurrency it reports latency percentiles,
// throughput and errors; also the rate of Python executions (d) sustains
// for BENCH_SUSTAIN_S seconds, and runtimed's memory. It prints a table and
// writes the figures as JSON and CSV and a PNG chart (BENCH_OUT, default
// bench-results/ at the top of the repository).
//
// It is a benchmark, not a test: `make bench` runs it once (-benchtime 1x).
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

var env = &harness.Env

// hello is one language's hello world.
type hello struct {
	language string
	files    []api.File
}

var hellos = []hello{
	{"python", harness.Files("main.py", `print("hello")`)},
	{"javascript", harness.Files("main.js", `console.log("hello")`)},
	{"c", harness.Files("main.c", "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n")},
	{"java", harness.Files("Main.java", "public class Main { public static void main(String[] a) { System.out.println(\"hello\"); } }\n")},
}

// A way to run a hello world: prepare it for a number of workers, run
// one on a worker, release it.
type way interface {
	name() string
	prepare(ctx context.Context, h hello, workers int) error
	run(ctx context.Context, h hello, worker int) error
	release()
}

// Cell is one measured cell: a language, a way, a concurrency.
type Cell struct {
	Language    string `json:"language"`
	Way         string `json:"way"`
	Concurrency int    `json:"concurrency"`
	// PauseMS is the pause of each worker between its requests: 0 is
	// back to back; a paced cell leaves the pool time to refill.
	PauseMS int `json:"pause_ms,omitempty"`
	// SustainedS, if set, is how long the cell ran: requests back to back
	// for that long, not a set number of them.
	SustainedS float64 `json:"sustained_s,omitempty"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`
	PerSecond  float64 `json:"per_second"`
	FirstError string  `json:"first_error,omitempty"`
}

// Report is what a run writes.
type Report struct {
	Date               string           `json:"date"`
	Host               string           `json:"host"`
	CPUs               int              `json:"cpus"`
	RequestsPerCell    int              `json:"requests_per_cell"`
	Cells              []Cell           `json:"cells"`
	DaemonRSSIdleBytes int64            `json:"daemon_rss_idle_bytes"`
	DaemonRSSPeakBytes int64            `json:"daemon_rss_peak_bytes"`
	IdleSandboxBytes   map[string]int64 `json:"idle_pooled_sandbox_bytes"`
	Pools              []api.Pool       `json:"pools"`
}

var concurrencies = []int{1, 2, 4, 8}

func BenchmarkWays(b *testing.B) {
	perCell := 24
	if v, err := strconv.Atoi(os.Getenv("BENCH_REQUESTS")); err == nil && v > 0 {
		perCell = v
	}
	sustainFor := 30 * time.Second
	if v, err := strconv.Atoi(os.Getenv("BENCH_SUSTAIN_S")); err == nil && v > 0 {
		sustainFor = time.Duration(v) * time.Second
	}
	ctx := context.Background()

	// (c): a second runtimed on the same containerd with its pools off.
	cold, err := harness.NewInstance("cold", "[pool]\nenabled = false\n")
	if err != nil {
		b.Fatal(err)
	}
	coldDaemon, err := harness.Start(cold, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer coldDaemon.Stop()

	warm := &runtimedWay{label: "runtimed warm pool", client: env.Client}
	ways := []way{
		&floorWay{},
		&ctrWay{},
		&runtimedWay{label: "runtimed cold", client: api.NewClient(cold.Socket, "")},
		warm,
	}

	waitPoolsReady(b, env.Client)
	report := Report{
		Date: time.Now().UTC().Format(time.RFC3339), CPUs: numCPU(), RequestsPerCell: perCell,
		DaemonRSSIdleBytes: rss(env.Daemon.Pid()), IdleSandboxBytes: map[string]int64{},
	}
	report.Host, _ = os.Hostname()
	var peak atomic.Int64
	stopSampling := sampleRSS(env.Daemon.Pid(), &peak)

	for _, h := range hellos {
		for _, w := range ways {
			if err := w.prepare(ctx, h, concurrencies[len(concurrencies)-1]); err != nil {
				b.Fatalf("%s, %s: %v", h.language, w.name(), err)
			}
			for _, c := range concurrencies {
				if w == way(warm) {
					waitPoolsReady(b, env.Client)
				}
				cell := measure(ctx, w, h, c, perCell, 0)
				b.Logf("%-10s %-20s c=%d  p50 %6.0f ms  p95 %6.0f ms  p99 %6.0f ms  %5.1f/s  errors %d %s",
					cell.Language, cell.Way, c, cell.P50MS, cell.P95MS, cell.P99MS, cell.PerSecond, cell.Errors, cell.FirstError)
				report.Cells = append(report.Cells, cell)
			}
			// One at a time with a pause: what a request gets when the
			// pool has had time to refill (a rate under the machine's
			// sandbox creation rate).
			if _, ok := w.(*runtimedWay); ok {
				if w == way(warm) {
					waitPoolsReady(b, env.Client)
				}
				cell := measure(ctx, w, h, 1, perCell, pace)
				b.Logf("%-10s %-20s c=1 paced  p50 %6.0f ms  p95 %6.0f ms  p99 %6.0f ms  errors %d %s",
					cell.Language, cell.Way, cell.P50MS, cell.P95MS, cell.P99MS, cell.Errors, cell.FirstError)
				report.Cells = append(report.Cells, cell)
			}
			// Python through the warm pool for a while: the sustained
			// rate, which sandbox creation bounds.
			if w == way(warm) && h.language == "python" {
				for _, c := range []int{1, 2} {
					waitPoolsReady(b, env.Client)
					cell := sustain(ctx, w, h, c, sustainFor)
					b.Logf("%-10s %-20s c=%d sustained %.0f s: %d requests, %5.1f/s  p50 %6.0f ms  p95 %6.0f ms  errors %d %s",
						cell.Language, cell.Way, c, cell.SustainedS, cell.Requests, cell.PerSecond, cell.P50MS, cell.P95MS, cell.Errors, cell.FirstError)
					report.Cells = append(report.Cells, cell)
				}
			}
			w.release()
		}
	}
	stopSampling()
	report.DaemonRSSPeakBytes = peak.Load()
	if ps, err := env.Client.Pools(ctx); err == nil {
		report.Pools = ps.Pools
		for _, p := range ps.Pools {
			report.IdleSandboxBytes[p.Image] = max(report.IdleSandboxBytes[p.Image], p.IdleBytes)
		}
	}

	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = filepath.Join(harness.RepoRoot(), "bench-results")
	}
	if err := write(report, out); err != nil {
		b.Fatal(err)
	}
	fmt.Print(table(report))
	fmt.Printf("figures in %s\n", out)
	for _, c := range report.Cells {
		if c.Errors > 0 && strings.HasPrefix(c.Way, "runtimed") {
			b.Errorf("%s %s c=%d: %d errors (%s)", c.Language, c.Way, c.Concurrency, c.Errors, c.FirstError)
		}
	}
}

// pace is the pause between the requests of a paced cell.
const pace = 500 * time.Millisecond

// measure runs n hello worlds on c workers, each pausing between its
// requests.
func measure(ctx context.Context, w way, h hello, c, n int, pause time.Duration) Cell {
	return measureUntil(ctx, w, h, c, n, pause, 0)
}

// sustain runs requests back to back at concurrency c for d: the rate
// the machine keeps up once the pool's sandboxes made at rest are used.
func sustain(ctx context.Context, w way, h hello, c int, d time.Duration) Cell {
	return measureUntil(ctx, w, h, c, 0, 0, d)
}

// measureUntil runs n requests or, with d > 0, requests for d.
func measureUntil(ctx context.Context, w way, h hello, c, n int, pause, d time.Duration) Cell {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		first     string
		next      atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	for worker := 0; worker < c; worker++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if d > 0 && time.Since(start) >= d || d == 0 && next.Add(1) > int64(n) {
					break
				}
				if pause > 0 {
					time.Sleep(pause)
				}
				t := time.Now()
				err := w.run(ctx, h, worker)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				} else {
					latencies = append(latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if d > 0 {
		n = len(latencies) + errs
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	cell := Cell{Language: h.language, Way: w.name(), Concurrency: c, PauseMS: int(pause.Milliseconds()), Requests: n, Errors: errs, FirstError: first}
	if d > 0 {
		cell.SustainedS = elapsed.Seconds()
	}
	if pause == 0 {
		cell.PerSecond = float64(len(latencies)) / elapsed.Seconds()
	}
	if len(latencies) > 0 {
		cell.P50MS = pct(latencies, 50)
		cell.P95MS = pct(latencies, 95)
		cell.P99MS = pct(latencies, 99)
	}
	return cell
}

// pct is the p-th percentile (nearest rank) in milliseconds.
func pct(sorted []time.Duration, p int) float64 {
	i := (len(sorted)*p+99)/100 - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// waitPoolsReady waits until no pool is filling, so that a cell starts
// with what the pools hold at rest.
func waitPoolsReady(b *testing.B, c *api.Client) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ps, err := c.Pools(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		busy := false
		for _, p := range ps.Pools {
			if p.Creating > 0 || p.Ready < p.Target {
				busy = true
			}
		}
		if !busy {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runtimedWay runs through a runtimed.
type runtimedWay struct {
	label  string
	client *api.Client
}

func (r *runtimedWay) name() string                              { return r.label }
func (r *runtimedWay) prepare(context.Context, hello, int) error { return nil }
func (r *runtimedWay) release()                                  {}
func (r *runtimedWay) run(ctx context.Context, h hello, _ int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	resp, err := r.client.Run(ctx, &api.RunRequest{Language: h.language, Files: h.files})
	if err != nil {
		return err
	}
	if resp.Status != api.StatusOK || resp.Run.Stdout != "hello\n" {
		return fmt.Errorf("%s: stdout %q stderr %q", resp.Status, resp.Run.Stdout, harness.Trim(resp.Run.Stderr))
	}
	return nil
}

func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func sampleRSS(pid int, peak *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v := rss(pid); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
