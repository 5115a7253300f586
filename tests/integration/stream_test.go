//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

// timedEvent is an event of a stream and when it came.
type timedEvent struct {
	api.Event
	at time.Time
}

// runStream runs req streamed and returns its events and answer.
func runStream(t *testing.T, ctx context.Context, req *api.RunRequest) ([]timedEvent, *api.RunResponse) {
	t.Helper()
	var evs []timedEvent
	resp, err := env.Client.RunStream(ctx, req, func(ev api.Event) error {
		evs = append(evs, timedEvent{ev, time.Now()})
		return nil
	})
	if err != nil {
		t.Fatalf("stream: %v (events so far: %s)", err, describeEvents(evs))
	}
	return evs, resp
}

// describeEvents says what came, one word or three an event.
func describeEvents(evs []timedEvent) string {
	var out []string
	for _, ev := range evs {
		s := string(ev.Event.Event)
		if ev.Stage != "" {
			s += " " + ev.Stage
		}
		if ev.Test != nil {
			s += fmt.Sprintf(" %d", *ev.Test)
		}
		if ev.Result != nil {
			s += " " + string(ev.Result.Status)
		}
		out = append(out, s)
	}
	return strings.Join(out, " | ")
}

// The first line a program prints reaches the client while the program
// still runs, not when it ends.
func TestStreamLiveOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	evs, resp := runStream(t, ctx, &api.RunRequest{Language: "python", Files: files("live.py",
		"import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\nprint('err', file=sys.stderr)\n")})
	expectStatus(t, resp, api.StatusOK)

	var first, done *timedEvent
	var stdout, stderr strings.Builder
	for i := range evs {
		ev := &evs[i]
		switch ev.Event.Event {
		case api.EventStdout:
			if first == nil {
				first = ev
			}
			stdout.WriteString(ev.Data)
		case api.EventStderr:
			stderr.WriteString(ev.Data)
		case api.EventDone:
			done = ev
		case api.EventStage, api.EventResult, api.EventError:
		}
	}
	if first == nil || done == nil || first.Data != "first\n" {
		t.Fatalf("events %s", describeEvents(evs))
	}
	if gap := done.at.Sub(first.at); gap < 1500*time.Millisecond {
		t.Fatalf("the first output came %s before the end: not as it was written", gap)
	}
	if stdout.String() != resp.Run.Stdout || stderr.String() != resp.Run.Stderr || resp.Run.Stdout != "first\nsecond\n" {
		t.Fatalf("streamed stdout %q stderr %q; the answer's %q %q", stdout.String(), stderr.String(), resp.Run.Stdout, resp.Run.Stderr)
	}
	if evs[0].Event.Event != api.EventStage || evs[0].Stage != "run" || evs[len(evs)-2].Event.Event != api.EventResult {
		t.Fatalf("events %s", describeEvents(evs))
	}
}

// A compiled language with tests: the compile, then each test, each
// started and ended, with the verdicts the answer has.
func TestStreamCompiledTests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := func(s string) *string { return &s }
	evs, resp := runStream(t, ctx, &api.RunRequest{Language: "c",
		Files: files("sum.c", "#include <stdio.h>\nint main(void) { int a, b; if (scanf(\"%d %d\", &a, &b) != 2) return 1; printf(\"%d\\n\", a + b); return 0; }\n"),
		Tests: []api.Test{{Stdin: "1 2\n", ExpectedOutput: want("3")}, {Stdin: "40 2\n", ExpectedOutput: want("43")}},
	})
	if resp.Status != api.StatusWrongAnswer || len(resp.Tests) != 2 || resp.Compile == nil {
		t.Fatalf("answer %+v", resp)
	}
	// Output events aside, the stages in order.
	var stages []timedEvent
	results := map[string]api.StageResult{}
	outputs := map[string]string{}
	for _, ev := range evs {
		key := ev.Stage
		if ev.Test != nil {
			key += fmt.Sprint(*ev.Test)
		}
		switch ev.Event.Event {
		case api.EventStdout:
			outputs[key] += ev.Data
			continue
		case api.EventStderr:
			continue
		case api.EventResult:
			results[key] = *ev.Result
		case api.EventStage, api.EventDone, api.EventError:
		}
		stages = append(stages, ev)
	}
	got := describeEvents(stages)
	if wantEvs := "stage compile | result compile ok | stage test 0 | result test 0 ok | stage test 1 | result test 1 wrong_answer | done"; got != wantEvs {
		t.Fatalf("events\n%s\nwant\n%s", got, wantEvs)
	}
	if outputs["test0"] != "3\n" || outputs["test1"] != "42\n" {
		t.Fatalf("outputs %q", outputs)
	}
	// A result event is the stage's result in the answer.
	if c := results["compile"]; c.Status != resp.Compile.Status || c.WallTimeMS != resp.Compile.WallTimeMS || c.Stderr != resp.Compile.Stderr {
		t.Fatalf("compile result %+v, the answer's %+v", c, *resp.Compile)
	}
	for i, r := range resp.Tests {
		if e := results[fmt.Sprint("test", i)]; e != r {
			t.Fatalf("test %d: result %+v, the answer's %+v", i, e, r)
		}
	}
}

// A client that goes away mid-stream ends its run: its sandbox goes
// long before the program's own time is up.
func TestStreamClientGoneLeavesNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	_, err := env.Client.RunStream(ctx, &api.RunRequest{Language: "python",
		Files:  files("forever.py", "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.1)\n"),
		Limits: api.Limits{WallTimeMS: 30000},
	}, func(ev api.Event) error {
		if ev.Event == api.EventStdout {
			cancel()
		}
		return nil
	})
	if err == nil {
		t.Fatal("the stream ended well")
	}
	waitNoLeftovers(t, 10*time.Second)
	if d := time.Since(start); d > 25*time.Second {
		t.Fatalf("the sandbox was gone only after %s", d)
	}
}

// runtimectl run prints the output as it comes: the first line is on its
// stdout while the program still runs.
func TestCLIRunPrintsAsItComes(t *testing.T) {
	dir := writeFiles(t, "live.py", "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')\n")
	cmd := exec.Command(filepath.Join(env.Bin, "runtimectl"), "--socket", env.Socket, "run", filepath.Join(dir, "live.py"))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	firstAt := time.Now()
	if err != nil || line != "first\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("first line %q: %v", line, err)
	}
	rest, err := r.ReadString('\n')
	if err != nil || rest != "second\n" {
		t.Fatalf("second line %q: %v", rest, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("runtimectl: %v", err)
	}
	if gap := time.Since(firstAt); gap < 1500*time.Millisecond {
		t.Fatalf("runtimectl printed the first line %s before it ended", gap)
	}
}
