//go:build integration

package security

// The compile stage runs a compiler on the request's files: the files
// must not steer the compiler into running code (options in file names,
// annotation processors), and what a compromised compiler leaves in the
// build must cost runtimed, on the host, no more than the box holds.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// TestCompileFileNamesAreNotOptions: a C file named -specs=d/x.c was a gcc
// option whose specs file ran a shell; a name starting with '-' or '@' is
// refused on both APIs, naming the file, and nothing is created.
func TestCompileFileNamesAreNotOptions(t *testing.T) {
	specs := "*cpp:\n+ %:getenv(HOME /../../bin/sh /box/evil.sh)\n"
	cases := []struct {
		lang, name string
		files      []map[string]string
	}{
		{"c", "-specs=d/x.c", []map[string]string{{"name": "-specs=d/x.c", "content": "int main(void){return 0;}"}, {"name": "d/x.c", "content": specs}, {"name": "evil.sh", "content": "echo pwned"}}},
		{"c", "@args.c", []map[string]string{{"name": "main.c", "content": "int main(void){return 0;}"}, {"name": "@args.c", "content": "-wrapper /bin/sh,/box/evil.sh"}}},
		{"cpp", "-fplugin=./p.cpp", []map[string]string{{"name": "-fplugin=./p.cpp", "content": ""}}},
		{"java", "@opts.java", []map[string]string{{"name": "Main.java", "content": "class Main {}"}, {"name": "@opts.java", "content": "-processorpath /box"}}},
		{"go", "-toolexec=x.go", []map[string]string{{"name": "-toolexec=x.go", "content": "package main"}}},
		{"rust", "@x.rs", []map[string]string{{"name": "@x.rs", "content": "fn main(){}"}}},
		{"typescript", "@x.ts", []map[string]string{{"name": "@x.ts", "content": "--plugins"}}},
	}
	harness.WaitNoLeftovers(t, 10*time.Second)
	before := strings.Join(harness.Leftovers(), ";")
	for _, c := range cases {
		t.Run(c.lang+" "+c.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"language": c.lang, "files": c.files})
			status, answer := harness.PostRaw(t, string(body))
			var e api.Error
			if status != http.StatusBadRequest || harness.DecodeErrorBody(answer, &e) != nil || e.Code != api.CodeInvalidFile ||
				!strings.HasPrefix(e.Field, "files[") || !strings.Contains(e.Message, strconv.Quote(c.name)) {
				t.Fatalf("/v1/run: %d %s", status, trim(string(answer)))
			}
			body, _ = json.Marshal(map[string]any{"language": c.lang, "version": "*", "files": c.files})
			status, answer = harness.Do(t, harness.UnixHTTP(), http.MethodPost, "http://runtimed/api/v2/execute", "application/json", "", string(body))
			var pe map[string]any
			if status != http.StatusBadRequest || json.Unmarshal(answer, &pe) != nil || len(pe) != 1 ||
				!strings.Contains(fmt.Sprint(pe["message"]), strconv.Quote(c.name)) {
				t.Fatalf("/api/v2/execute: %d %s", status, trim(string(answer)))
			}
		})
	}
	if after := strings.Join(harness.Leftovers(), ";"); after != before {
		t.Fatalf("refused requests created %q", after)
	}
}

// evilProcessor is an annotation processor that would run a shell in
// javac: it prints a marker and leaves a file in the build.
const evilProcessor = `import java.util.Set;
import javax.annotation.processing.*;
import javax.lang.model.element.TypeElement;

@SupportedAnnotationTypes("*")
public class EvilProcessor extends AbstractProcessor {
    public EvilProcessor() {
        System.err.println("EVIL-PROCESSOR-RAN");
        try {
            new ProcessBuilder("/bin/sh", "-c", "echo EVIL-SHELL-RAN; echo ran > /box/.runtimed/classes/evil.txt").inheritIO().start().waitFor();
        } catch (Exception e) {
            System.err.println("EVIL-PROCESSOR-FAILED " + e);
        }
    }

    public boolean process(Set<? extends TypeElement> annotations, RoundEnvironment env) {
        return false;
    }
}
`

// TestJavacRunsNoAnnotationProcessor: a request's META-INF/services file
// and processor class (sent base64 through the Piston API) made javac
// run the processor, and it a shell. javac now runs no processor and
// loads nothing of /box.
func TestJavacRunsNoAnnotationProcessor(t *testing.T) {
	// The processor's class file, compiled by runtimed and printed by a
	// program that reads it from the build.
	resp := hostile(t, &api.RunRequest{Language: "java", Files: files(
		"Main.java", `public class Main {
    public static void main(String[] args) throws Exception {
        System.out.print(java.util.Base64.getEncoder().encodeToString(
            java.nio.file.Files.readAllBytes(java.nio.file.Path.of("/box/.runtimed/classes/EvilProcessor.class"))));
    }
}`,
		"EvilProcessor.java", evilProcessor,
	)})
	statusIn(t, resp, api.StatusOK)
	class := resp.Run.Stdout
	if _, err := base64.StdEncoding.DecodeString(class); err != nil || class == "" {
		t.Fatalf("the processor's class: %q %v", trim(class), err)
	}

	base := readHost(t)
	body, _ := json.Marshal(map[string]any{"language": "java", "version": "*", "files": []map[string]string{
		{"name": "Main.java", "content": `@Deprecated
public class Main {
    public static void main(String[] args) {
        System.out.println(new java.io.File("/box/.runtimed/classes/evil.txt").exists() ? "the processor ran" : "clean");
    }
}`},
		{"name": "META-INF/services/javax.annotation.processing.Processor", "content": "EvilProcessor\n"},
		{"name": "EvilProcessor.class", "content": class, "encoding": "base64"},
	}})
	status, answer := harness.Do(t, harness.UnixHTTP(), http.MethodPost, "http://runtimed/api/v2/execute", "application/json", "", string(body))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, trim(string(answer)))
	}
	var out api.PistonExecuteResponse
	if err := json.Unmarshal(answer, &out); err != nil {
		t.Fatal(err)
	}
	if out.Compile == nil || strings.Contains(out.Compile.Output, "EVIL") || strings.Contains(out.Run.Output, "EVIL") {
		t.Fatalf("the processor ran: %s", trim(string(answer)))
	}
	if out.Run.Stdout != "clean\n" || out.Run.Code == nil || *out.Run.Code != 0 {
		t.Fatalf("run: %s", trim(string(answer)))
	}
	hostIsFine(t, base)
}

// A compromised compiler, for the tests below: the compile stage runs the
// request's shell script in Java's image. evilc runs the build with
// Java's run command (runtimed looks for its main class); evilcopy with a
// shell, so the build is copied into the run's box as it is.
const compromisedCompiler = `
[pool]
enabled = false

[languages.evilc]
version = "1"
extension = ".sh"
image = "runtimed.local/java:17"
compile = ["/bin/sh", "{entry}"]
run = ["/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
  "-XX:MaxRAM={memory_bytes}", "-XX:MaxRAMPercentage=60", "-XX:+UseSerialGC", "-Xshare:auto",
  "-XX:TieredStopAtLevel=1", "-XX:CICompilerCount=1", "-XX:+ExitOnOutOfMemoryError",
  "-cp", "/box/.runtimed/classes", "{main_class}"]

[languages.evilcopy]
version = "1"
extension = ".sh"
image = "runtimed.local/java:17"
compile = ["/bin/sh", "{entry}"]
run = ["/bin/sh", "-c", "stat -c %h /box/.runtimed/classes/A.class"]
`

// daemonCPU is the CPU time the process pid has used (utime + stime,
// fields 14 and 15 of /proc/<pid>/stat).
func daemonCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command, which is in parentheses, start at 3.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// otherClass is a real class file with public static void main: Other.
func otherClass(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "internal", "language", "testdata", "classes", "Other.class"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// printf is a shell command writing data to path, every byte escaped.
func printf(data []byte, path string) string {
	var b strings.Builder
	b.WriteString("printf '")
	for _, c := range data {
		fmt.Fprintf(&b, "\\%03o", c)
	}
	b.WriteString("' > " + path + "\n")
	return b.String()
}

// linkedBuild is a build script: A.class holds class, is made sparse to
// 8 MiB, and gets 2,047 more names (hard links), in eleven doublings.
func linkedBuild(class []byte) string {
	return "set -e\nmkdir -p /box/.runtimed/classes\ncd /box/.runtimed/classes\n" +
		printf(class, "A.class") +
		"truncate -s 8M A.class\n" +
		"for i in 0 1 2 3 4 5 6 7 8 9 10; do cp -al . ../t; mv ../t d$i; done\n" +
		"echo $(stat -c %h A.class) names, $(du -sk . | cut -f1) KiB\n"
}

// compileOn runs req on client and returns its answer and the daemon's
// CPU time across it; the host must be fine after.
func compileOn(t *testing.T, client *api.Client, d *harness.Daemon, req *api.RunRequest) (*api.RunResponse, time.Duration) {
	t.Helper()
	base := readHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cpu := daemonCPU(t, d.Pid())
	start := time.Now()
	resp, err := client.Run(ctx, req)
	used := daemonCPU(t, d.Pid()) - cpu
	t.Logf("runtimed used %v of CPU in %v", used, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	hostIsFine(t, base)
	return resp, used
}

// maxDaemonCPU is what one of these requests may cost runtimed itself:
// creating two sandboxes and reading a box, not gigabytes.
const maxDaemonCPU = 2 * time.Second

// TestCompileTimeAmplification: a build of one 8 MiB mostly-hole class
// file and 2,047 hard links to it (about 20 KiB of the box) made runtimed
// read 16 GiB for the Java main class (31.7 s of its own CPU, outside
// every cgroup), then answer 500 when the copy did not fit the run box.
// Now it costs runtimed what the box holds, and the answer is a verdict.
func TestCompileTimeAmplification(t *testing.T) {
	in, d := harness.StartInstance(t, "compiletime", compromisedCompiler)
	client := api.NewClient(in.Socket, "")
	class := otherClass(t)

	t.Run("main-class search", func(t *testing.T) {
		resp, cpu := compileOn(t, client, d, &api.RunRequest{Language: "evilc", Files: files("build.sh", linkedBuild(class))})
		if resp.Status != api.StatusCompileError || resp.Compile == nil || !strings.Contains(resp.Compile.Message, "main(String[])") {
			t.Fatalf("status %s, compile %+v", resp.Status, resp.Compile)
		}
		if !strings.Contains(resp.Compile.Stdout, "2048 names") {
			t.Fatalf("the build is not what the test meant: %q %q", resp.Compile.Stdout, trim(resp.Compile.Stderr))
		}
		t.Logf("verdict: %s", resp.Compile.Message)
		if cpu > maxDaemonCPU {
			t.Fatalf("runtimed used %v of its own CPU", cpu)
		}
	})
	t.Run("copy into the run box", func(t *testing.T) {
		// The same build: copied once, its names stay links.
		resp, cpu := compileOn(t, client, d, &api.RunRequest{Language: "evilcopy", Files: files("build.sh", linkedBuild(class))})
		if resp.Status != api.StatusOK || resp.Run == nil || resp.Run.Stdout != "2048\n" {
			t.Fatalf("status %s, compile %+v, run %+v", resp.Status, resp.Compile, resp.Run)
		}
		if cpu > maxDaemonCPU {
			t.Fatalf("runtimed used %v of its own CPU", cpu)
		}
	})
	t.Run("larger than the run box", func(t *testing.T) {
		build := "set -e\nmkdir -p /box/.runtimed/classes\ncd /box/.runtimed/classes\n" +
			"for f in A B C D E F G H; do truncate -s 8M $f.class; done\n"
		resp, cpu := compileOn(t, client, d, &api.RunRequest{Language: "evilcopy", Files: files("build.sh", build)})
		if resp.Status != api.StatusCompileError || resp.Compile == nil || !strings.Contains(resp.Compile.Message, "more than the run box's") ||
			!strings.Contains(resp.Compile.Stderr, "runtimed: the build holds") {
			t.Fatalf("status %s, compile %+v", resp.Status, resp.Compile)
		}
		t.Logf("verdict: %s", resp.Compile.Message)
		if strings.Contains(resp.Compile.Message, "/") {
			t.Fatalf("the message shows a path: %s", resp.Compile.Message)
		}
		if cpu > maxDaemonCPU {
			t.Fatalf("runtimed used %v of its own CPU", cpu)
		}
	})
	t.Run("a main class named like an option", func(t *testing.T) {
		// Other's class, renamed -version: java would take it as an option.
		bad := []byte(strings.Replace(string(class), "\x01\x00\x05Other", "\x01\x00\x08-version", 1))
		build := "set -e\nmkdir -p /box/.runtimed/classes\n" + printf(bad, "/box/.runtimed/classes/X.class")
		resp, _ := compileOn(t, client, d, &api.RunRequest{Language: "evilc", Files: files("build.sh", build)})
		if resp.Status != api.StatusCompileError || resp.Compile == nil || !strings.Contains(resp.Compile.Message, `"-version" is not a Java binary name`) || resp.Run != nil {
			t.Fatalf("status %s, compile %+v, run %+v", resp.Status, resp.Compile, resp.Run)
		}
	})
}
