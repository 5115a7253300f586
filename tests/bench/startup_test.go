//go:build integration

package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// StartupReport is the Python startup cell: a plain hello world on the
// default Python before the data stack (3.11, the standard library only)
// and after (3.13 with numpy, pandas, scipy, matplotlib, sympy, pillow in
// its image), alternately, each in a new sandbox (no pool).
type StartupReport struct {
	Date   string `json:"date"`
	Rounds int    `json:"rounds"`
	// By version: the request's p50 and the program's own wall time p50.
	RequestMS map[string]float64 `json:"request_p50_ms"`
	ProgramMS map[string]float64 `json:"program_p50_ms"`
}

// BenchmarkPythonStartup measures the startup cell. BENCH_STARTUP_ROUNDS
// sets the rounds (default 15).
func BenchmarkPythonStartup(b *testing.B) {
	rounds := 15
	if v, err := strconv.Atoi(os.Getenv("BENCH_STARTUP_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	in, _ := harness.StartInstance(b, "startup", "[pool]\nenabled = false\n")
	c := api.NewClient(in.Socket, "")
	ctx := context.Background()
	versions := []string{"3.11", "3.13"}
	req, prog := map[string][]float64{}, map[string][]float64{}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for r := range rounds + 1 {
		for _, v := range versions {
			start := time.Now()
			resp, err := c.Run(ctx, &api.RunRequest{Language: "python", Version: v, Files: harness.Files("hello.py", `print("hello, world")`)})
			d := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if resp.Status != api.StatusOK || resp.Run.Stdout != "hello, world\n" {
				b.Fatalf("python %s: %s %q", v, resp.Status, resp.Run.Stderr)
			}
			if r == 0 { // the first of each warms the host's caches
				continue
			}
			req[v] = append(req[v], ms(d))
			prog[v] = append(prog[v], float64(resp.Run.WallTimeMS))
		}
	}
	rep := StartupReport{Date: time.Now().UTC().Format(time.RFC3339), Rounds: rounds, RequestMS: map[string]float64{}, ProgramMS: map[string]float64{}}
	fmt.Printf("\npython startup cell: hello world, new sandbox each, %d rounds alternately, medians\n", rounds)
	for _, v := range versions {
		rep.RequestMS[v], rep.ProgramMS[v] = median(req[v]), median(prog[v])
		fmt.Printf("  python %s: request %6.0f ms, program %5.0f ms\n", v, rep.RequestMS[v], rep.ProgramMS[v])
	}
	fmt.Printf("  3.13 (data stack) / 3.11: request %.2fx, program %.2fx\n", rep.RequestMS["3.13"]/rep.RequestMS["3.11"], rep.ProgramMS["3.13"]/rep.ProgramMS["3.11"])
	writeReport(b, "startup.json", rep)
}
