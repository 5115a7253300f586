//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

func compiledOK(t *testing.T, resp *api.RunResponse) {
	t.Helper()
	if resp.Compile == nil {
		t.Fatal("no compile stage in the answer")
	}
	if resp.Compile.Status != api.StatusOK {
		t.Fatalf("compile %s: %s", resp.Compile.Status, trim(resp.Compile.Stderr))
	}
}

func TestCompiledHelloWorld(t *testing.T) {
	for _, c := range []byLanguage{
		{"c", files("hello.c", "#include <stdio.h>\nint main(void) { printf(\"hello, world\\n\"); return 0; }\n")},
		{"cpp", files("hello.cpp", "#include <iostream>\nint main() { std::cout << \"hello, world\" << std::endl; }\n")},
		{"java", files("Main.java", "public class Main { public static void main(String[] a) { System.out.println(\"hello, world\"); } }\n")},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			compiledOK(t, resp)
			expectStatus(t, resp, api.StatusOK)
			if resp.Run.Stdout != "hello, world\n" {
				t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, resp.Run.Stderr)
			}
		})
	}
}

func TestCompileError(t *testing.T) {
	for _, c := range []struct {
		byLanguage
		message string
	}{
		{byLanguage{"c", files("bad.c", "int main(void) { return undefined_name; }\n")}, "undefined_name"},
		{byLanguage{"cpp", files("bad.cpp", "int main() { std::string s; }\n")}, "string"},
		{byLanguage{"java", files("Main.java", "public class Main { public static void main(String[] a) { int x = \"s\"; } }\n")}, "incompatible types"},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			if resp.Status != api.StatusCompileError || resp.Compile == nil || resp.Run != nil {
				t.Fatalf("status %s, compile %+v, run %+v", resp.Status, resp.Compile, resp.Run)
			}
			if resp.Compile.ExitCode == 0 || !strings.Contains(resp.Compile.Stderr, "error") || !strings.Contains(resp.Compile.Stderr, c.message) {
				t.Fatalf("compile exit %d stderr %q", resp.Compile.ExitCode, resp.Compile.Stderr)
			}
		})
	}
}

func TestCNullDereference(t *testing.T) {
	resp := runOK(t, &api.RunRequest{Language: "c", Files: files("segv.c",
		"#include <stdio.h>\nint main(void) { volatile int *p = 0; printf(\"%d\\n\", *p); return 0; }\n")})
	compiledOK(t, resp)
	expectStatus(t, resp, api.StatusRuntimeError)
	if resp.Run.Signal != "SIGSEGV" {
		t.Fatalf("signal %q exit %d", resp.Run.Signal, resp.Run.ExitCode)
	}
}

func TestJavaUncaughtException(t *testing.T) {
	resp := runOK(t, &api.RunRequest{Language: "java", Files: files("Main.java",
		"public class Main {\n  static void fail() { throw new IllegalStateException(\"boom\"); }\n  public static void main(String[] a) { fail(); }\n}\n")})
	compiledOK(t, resp)
	expectStatus(t, resp, api.StatusRuntimeError)
	for _, want := range []string{`Exception in thread "main" java.lang.IllegalStateException: boom`, "at Main.fail(Main.java:2)", "at Main.main(Main.java:3)"} {
		if !strings.Contains(resp.Run.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, resp.Run.Stderr)
		}
	}
}

func TestCForkBombIsHeld(t *testing.T) {
	const limit = 2000
	resp := runOK(t, &api.RunRequest{Language: "c", Files: files("bomb.c",
		"#include <unistd.h>\nint main(void) { for (;;) fork(); }\n"), Limits: api.Limits{WallTimeMS: limit}})
	compiledOK(t, resp)
	expectStatus(t, resp, api.StatusTimeout)
	if resp.Run.WallTimeMS > limit+1000 {
		t.Fatalf("wall time %d ms", resp.Run.WallTimeMS)
	}
	// The bomb held nothing: the next run works, and nothing is left.
	after := runOK(t, &api.RunRequest{Language: "c", Files: files("ok.c", "#include <stdio.h>\nint main(void) { puts(\"fine\"); }\n")})
	expectStatus(t, after, api.StatusOK)
	waitNoLeftovers(t, 5*time.Second)
}

func TestCMultiFile(t *testing.T) {
	resp := runOK(t, &api.RunRequest{Language: "c", Files: files(
		"main.c", "#include <stdio.h>\n#include \"lib/calc.h\"\nint main(void) { printf(\"%d\\n\", add(2, 3)); return 0; }\n",
		"lib/calc.h", "#ifndef CALC_H\n#define CALC_H\nint add(int a, int b);\n#endif\n",
		"lib/calc.c", "#include \"calc.h\"\nint add(int a, int b) { return a + b; }\n",
	)})
	compiledOK(t, resp)
	expectStatus(t, resp, api.StatusOK)
	if resp.Run.Stdout != "5\n" {
		t.Fatalf("stdout %q", resp.Run.Stdout)
	}
}

func TestJavaMainClass(t *testing.T) {
	for name, fs := range map[string][]api.File{
		"non-public main class in a file of another name": files("Solution.java",
			"import java.util.*;\nclass Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).nextInt() * 2); } }\n"),
		"two classes in two files, in a package": files(
			"app/Main.java", "package app;\npublic class Main { public static void main(String[] a) { System.out.println(Helper.twice(Integer.parseInt(new java.util.Scanner(System.in).next()))); } }\n",
			"app/Helper.java", "package app;\nclass Helper { static int twice(int x) { return 2 * x; } }\n"),
		"public main class in a file of any name": files("main.java",
			"import java.util.*;\npublic class Main { public static void main(String[] a) { System.out.println(new Scanner(System.in).nextInt() * 2); } }\n"),
		"public classes in files of other names": files(
			"solution.java", "public class Solution { public static void main(String[] a) { System.out.println(Twice.of(new java.util.Scanner(System.in).nextInt())); } }\n",
			"lib/twice.java", "public class Twice { static int of(int x) { return 2 * x; } }\n"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: "java", Files: fs, Stdin: "21\n"})
			compiledOK(t, resp)
			expectStatus(t, resp, api.StatusOK)
			if resp.Run.Stdout != "42\n" {
				t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, trim(resp.Run.Stderr))
			}
		})
	}
	resp := runOK(t, &api.RunRequest{Language: "java", Files: files("Lib.java", "class Lib { static int x; }\n")})
	if resp.Status != api.StatusCompileError || !strings.Contains(resp.Compile.Stderr, "main") {
		t.Fatalf("no main class: %s %+v", resp.Status, resp.Compile)
	}
}

func TestJavaMemoryLimit(t *testing.T) {
	hog := files("Main.java", "import java.util.*;\npublic class Main { public static void main(String[] a) { List<long[]> l = new ArrayList<>(); for (;;) l.add(new long[1 << 20]); } }\n")
	for _, limit := range []int64{0, 96 << 20, 256 << 20} { // the default (128 MiB), and explicit ones
		resp := runOK(t, &api.RunRequest{Language: "java", Files: hog, Limits: api.Limits{MemoryBytes: limit}})
		compiledOK(t, resp)
		expectStatus(t, resp, api.StatusMemoryLimit)
		if strings.Contains(resp.Run.Stdout+resp.Run.Stderr, "hs_err") {
			t.Fatalf("limit %d: the JVM crashed instead: %s", limit, trim(resp.Run.Stderr))
		}
	}
}

func TestJavaUnderDefaultLimits(t *testing.T) {
	// A little real work at 128 MiB and 0.5 CPU: collections, streams, a
	// string builder, no JVM complaints on stderr.
	code := `import java.util.*;
import java.util.stream.*;
public class Main {
  public static void main(String[] a) {
    Map<Integer, Integer> m = new HashMap<>();
    for (int i = 0; i < 200000; i++) m.merge(i % 1000, 1, Integer::sum);
    StringBuilder sb = new StringBuilder();
    IntStream.range(0, 5).forEach(i -> sb.append(m.get(i)).append(' '));
    System.out.println(sb.toString().trim());
  }
}
`
	resp := runOK(t, &api.RunRequest{Language: "java", Files: files("Main.java", code)})
	compiledOK(t, resp)
	expectStatus(t, resp, api.StatusOK)
	if resp.Run.Stdout != "200 200 200 200 200\n" || resp.Run.Stderr != "" {
		t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, resp.Run.Stderr)
	}
}

// TestJudgedCpp compiles once and runs five tests, one of which expects
// a wrong answer; the daemon's log shows one compile stage.
func TestJudgedCpp(t *testing.T) {
	src := "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << \"\\n\"; }\n"
	want := func(s string) *string { return &s }
	req := api.RunRequest{Language: "cpp", Files: files("sum.cpp", src), Tests: []api.Test{
		{Stdin: "1 2\n", ExpectedOutput: want("3\n")},
		{Stdin: "10 20\n", ExpectedOutput: want("30")},
		{Stdin: "-5 5\n", ExpectedOutput: want("0\n\n")},
		{Stdin: "100 1\n", ExpectedOutput: want("102\n")}, // wrong on purpose
		{Stdin: "7 8\n", ExpectedOutput: want("15  \n")},
	}}
	const id = "judged-cpp-test"
	resp := postWithID(t, id, &req)
	compiledOK(t, resp)
	if len(resp.Tests) != 5 || resp.Run != nil {
		t.Fatalf("%d tests, run %+v", len(resp.Tests), resp.Run)
	}
	for i, tr := range resp.Tests {
		wantStatus := api.StatusOK
		if i == 3 {
			wantStatus = api.StatusWrongAnswer
		}
		if tr.Status != wantStatus {
			t.Errorf("test %d: %s (stdout %q), want %s", i, tr.Status, tr.Stdout, wantStatus)
		}
	}
	if resp.Summary[api.StatusOK] != 4 || resp.Summary[api.StatusWrongAnswer] != 1 || resp.Status != api.StatusWrongAnswer {
		t.Fatalf("summary %v status %s", resp.Summary, resp.Status)
	}
	stages := stagesInLog(t, id)
	if stages["compile"] != 1 || stages["test"] != 5 {
		t.Fatalf("the log shows stages %v, want 1 compile and 5 tests", stages)
	}
}

func TestTestsAreIsolated(t *testing.T) {
	code := "import os, sys\nname = sys.stdin.read().strip()\nprint(sorted(f for f in os.listdir('.') if f.startswith('mark')))\nopen('mark-' + name, 'w').write('x')\n"
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("iso.py", code), Tests: []api.Test{{Stdin: "a"}, {Stdin: "b"}, {Stdin: "c"}}})
	if resp.Compile != nil || len(resp.Tests) != 3 {
		t.Fatalf("compile %+v, %d tests", resp.Compile, len(resp.Tests))
	}
	for i, tr := range resp.Tests {
		if tr.Status != api.StatusOK || tr.Stdout != "[]\n" {
			t.Errorf("test %d: %s, saw %q", i, tr.Status, tr.Stdout)
		}
	}
}

func TestTestsCompareModes(t *testing.T) {
	want := "1 2\n3\n"
	for mode, wantStatus := range map[api.Compare]api.Status{
		api.CompareExact:  api.StatusWrongAnswer,
		api.CompareTrim:   api.StatusWrongAnswer,
		api.CompareTokens: api.StatusOK,
	} {
		resp := runOK(t, &api.RunRequest{Language: "python", Files: files("p.py", "print('1  2 3 ')"),
			Tests: []api.Test{{ExpectedOutput: &want}}, Compare: mode})
		if resp.Tests[0].Status != wantStatus {
			t.Errorf("compare %s: %s, want %s", mode, resp.Tests[0].Status, wantStatus)
		}
	}
}

// postWithID posts req with an X-Request-Id of id.
func postWithID(t *testing.T, id string, req *api.RunRequest) *api.RunResponse {
	t.Helper()
	body, _ := json.Marshal(req)
	hreq, _ := http.NewRequest(http.MethodPost, "http://runtimed/v1/run", strings.NewReader(string(body)))
	hreq.Header.Set("X-Request-Id", id)
	hresp, err := unixHTTP().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer hresp.Body.Close()
	data, _ := io.ReadAll(hresp.Body)
	if hresp.StatusCode != 200 {
		t.Fatalf("status %d: %s", hresp.StatusCode, data)
	}
	var resp api.RunResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

// stagesInLog counts the stage lines runtimed logged for request id.
func stagesInLog(t *testing.T, id string) map[string]int {
	t.Helper()
	f, err := os.Open(env.Daemon.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
			Stage     string `json:"stage"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.RequestID == id && line.Msg == "stage" {
			counts[line.Stage]++
		}
	}
	return counts
}
