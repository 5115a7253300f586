//go:build integration

package integration

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

// BenchmarkHelloWorld times a hello world end to end — request, sandbox,
// compile if any, run, cleanup — per language, and reports the median
// and the 90th percentile of the iterations (run with -benchtime=Nx).
func BenchmarkHelloWorld(b *testing.B) {
	for _, c := range []byLanguage{
		{"python", files("hello.py", `print("hello")`)},
		{"javascript", files("hello.js", `console.log("hello")`)},
		{"c", files("hello.c", "#include <stdio.h>\nint main(void) { puts(\"hello\"); }\n")},
		{"cpp", files("hello.cpp", "#include <iostream>\nint main() { std::cout << \"hello\\n\"; }\n")},
		{"java", files("Main.java", "public class Main { public static void main(String[] a) { System.out.println(\"hello\"); } }\n")},
	} {
		b.Run(c.language, func(b *testing.B) {
			var took []time.Duration
			var compile, run []int64
			for i := 0; i < b.N; i++ {
				start := time.Now()
				resp, err := env.Client.Run(context.Background(), &api.RunRequest{Language: c.language, Files: c.files})
				if err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
				if resp.Status != api.StatusOK || resp.Run.Stdout != "hello\n" {
					b.Fatalf("%s: %+v", resp.Status, resp.Run)
				}
				if resp.Compile != nil {
					compile = append(compile, resp.Compile.WallTimeMS)
				}
				run = append(run, resp.Run.WallTimeMS)
			}
			sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
			b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "median-ms")
			b.ReportMetric(float64(took[len(took)*9/10].Milliseconds()), "p90-ms")
			if len(compile) > 0 {
				b.ReportMetric(float64(median(compile)), "compile-median-ms")
			}
			b.ReportMetric(float64(median(run)), "run-median-ms")
		})
	}
}

func median(v []int64) int64 {
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
