//go:build integration

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/oci"
	"github.com/runtimed/runtimed/tests/harness"
)

// judgeSource is the judged submission: C++ a+b.
const judgeSource = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << std::endl; }\n"

// JudgeReport is the judge cell: a C++ a+b judged through runtimed with 1,
// 20 and 21 tests, and natively (the image's g++ under chroot, then 20
// runs), round after round, side by side.
type JudgeReport struct {
	Date   string `json:"date"`
	Rounds int    `json:"rounds"`
	// Medians over the rounds, in milliseconds.
	Tests1MS  float64 `json:"tests_1_ms"`
	Tests20MS float64 `json:"tests_20_ms"`
	Tests21MS float64 `json:"tests_21_ms"`
	NativeMS  float64 `json:"native_compile_20_runs_ms"`
	// PerTestMS is the median of (T(21 tests) − T(1 test)) / 20 over the
	// rounds: the cost of one more test.
	PerTestMS float64 `json:"per_test_ms"`
	// Ratio is median T(20 tests) / median native compile + 20 runs.
	Ratio float64 `json:"ratio_to_native"`
}

// BenchmarkJudge measures the judge cell. BENCH_JUDGE_ROUNDS sets the
// rounds (default 7).
func BenchmarkJudge(b *testing.B) {
	rounds := 7
	if v, err := strconv.Atoi(os.Getenv("BENCH_JUDGE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	ctx := context.Background()
	h := hello{"cpp", harness.Files("ab.cpp", judgeSource)}
	floor := &floorWay{}
	if err := floor.prepare(ctx, h, 1); err != nil {
		b.Fatal(err)
	}
	defer floor.release()

	tests := func(n int) []api.Test {
		var ts []api.Test
		for i := range n {
			want := strconv.Itoa(2*i + 1)
			ts = append(ts, api.Test{Stdin: fmt.Sprintf("%d %d\n", i, i+1), ExpectedOutput: &want})
		}
		return ts
	}
	judge := func(n int) (time.Duration, error) {
		start := time.Now()
		resp, err := env.Client.Run(ctx, &api.RunRequest{Language: "cpp", Files: h.files, Tests: tests(n)})
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if resp.Status != api.StatusOK || resp.Summary[api.StatusOK] != n {
			return 0, fmt.Errorf("%d tests: status %s summary %v", n, resp.Status, resp.Summary)
		}
		return d, nil
	}
	var t1, t20, t21, native, perTest []float64
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for r := range rounds {
		waitPoolsReady(b, env.Client)
		a, err := judge(1)
		if err != nil {
			b.Fatal(err)
		}
		waitPoolsReady(b, env.Client)
		c, err := judge(21)
		if err != nil {
			b.Fatal(err)
		}
		waitPoolsReady(b, env.Client)
		t, err := judge(20)
		if err != nil {
			b.Fatal(err)
		}
		n, err := nativeJudge(ctx, floor.roots[0], h, tests(20))
		if err != nil {
			b.Fatal(err)
		}
		t1, t21, t20, native = append(t1, ms(a)), append(t21, ms(c)), append(t20, ms(t)), append(native, ms(n))
		perTest = append(perTest, (ms(c)-ms(a))/20)
		b.Logf("round %d: 1 test %.0f ms, 20 tests %.0f ms, 21 tests %.0f ms, native compile + 20 runs %.0f ms", r+1, ms(a), ms(t), ms(c), ms(n))
	}
	rep := JudgeReport{
		Date: time.Now().UTC().Format(time.RFC3339), Rounds: rounds,
		Tests1MS: median(t1), Tests20MS: median(t20), Tests21MS: median(t21), NativeMS: median(native), PerTestMS: median(perTest),
	}
	rep.Ratio = rep.Tests20MS / rep.NativeMS
	fmt.Printf("\njudge cell: C++ a+b, %d rounds, medians\n", rounds)
	fmt.Printf("  compile + 1 test     %8.0f ms\n  compile + 20 tests   %8.0f ms\n  compile + 21 tests   %8.0f ms\n", rep.Tests1MS, rep.Tests20MS, rep.Tests21MS)
	fmt.Printf("  native compile + 20 runs %4.0f ms\n", rep.NativeMS)
	fmt.Printf("  one more test (T21 - T1) / 20: %.1f ms (target <= 20)\n", rep.PerTestMS)
	fmt.Printf("  compile + 20 tests / native: %.2fx (target <= 2.5)\n", rep.Ratio)

	writeReport(b, "judge.json", rep)
}

// writeReport writes a cell's report as JSON into BENCH_OUT (default
// bench-results/).
func writeReport(b *testing.B, name string, rep any) {
	out := os.Getenv("BENCH_OUT")
	if out == "" {
		out = filepath.Join(harness.RepoRoot(), "bench-results")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		b.Fatal(err)
	}
	data, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, name), append(data, '\n'), 0o644); err != nil {
		b.Fatal(err)
	}
}

// nativeJudge compiles the submission with the image's compiler under
// chroot in root and runs it once per test, checking each answer.
func nativeJudge(ctx context.Context, root string, h hello, tests []api.Test) (time.Duration, error) {
	box := filepath.Join(root, oci.BoxDir)
	entries, _ := os.ReadDir(box)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(box, e.Name()))
	}
	for _, f := range h.files {
		if err := os.WriteFile(filepath.Join(box, f.Name), []byte(f.Content), 0o644); err != nil {
			return 0, err
		}
	}
	build := filepath.Join(box, ".runtimed")
	if err := os.Mkdir(build, 0o777); err != nil {
		return 0, err
	}
	if err := os.Chmod(build, 0o777); err != nil {
		return 0, err
	}
	l := lookup(h.language)
	chroot := func(argv []string, stdin string) (string, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = oci.BoxDir
		cmd.Env = oci.ProgramEnv(l.Env)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: defaults.Sandbox.UID, Gid: defaults.Sandbox.GID}}
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	start := time.Now()
	compile, run := stages(h, build)
	if out, err := chroot(compile, ""); err != nil {
		return 0, fmt.Errorf("compile: %v: %s", err, out)
	}
	argv, err := run()
	if err != nil {
		return 0, err
	}
	for _, t := range tests {
		out, err := chroot(argv, t.Stdin)
		if err != nil || strings.TrimSpace(out) != *t.ExpectedOutput {
			return 0, fmt.Errorf("run: %v: %q", err, out)
		}
	}
	return time.Since(start), nil
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
