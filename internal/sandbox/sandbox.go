package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/agent"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/oci"
)

// Profile is what a sandbox is created with: its image and its cgroup
// limits. A pooled sandbox serves only programs of its own profile.
type Profile struct {
	Image       string
	MemoryBytes int64
	CPU         float64
	Pids        int64
}

// ProfileOf is the profile a stage with these limits needs.
func ProfileOf(image string, l api.Limits) Profile {
	return Profile{Image: image, MemoryBytes: l.MemoryBytes, CPU: l.CPU, Pids: l.Pids}
}

// Sandbox is a started gVisor sandbox whose agent waits for a program to
// run. It has its own box, mounted at /box. It runs programs one after the
// other, for one request only: as long as each ends with its agent's
// report (Reusable), the next one may come, once its caller has put the
// box back as the next program must find it (Box.Empty, then the files).
type Sandbox struct {
	ID      string
	profile Profile
	r       *Runner
	box     *Box
	keepBox bool
	log     *logrus.Entry

	task   containerd.Task
	exitCh <-chan containerd.ExitStatus
	// agentDone: the agent reported its program's end, and exits on a
	// quit frame or when its input ends.
	agentDone  bool
	cancelWait context.CancelFunc
	toAgent    *io.PipeWriter // the agent's stdin
	fromAgent  *io.PipeWriter // the agent's stdout, as the shim's copy writes it
	frames     chan frame
	stopFrames chan struct{}
	agentLog   *cappedBuffer // the agent's stderr

	// IdleMemoryBytes is what the sandbox's cgroup held once it was ready.
	IdleMemoryBytes int64

	mu       sync.Mutex
	runs     int  // programs started
	reusable bool // the last one ended with the agent's report
	// wedged: a write to the agent did not finish after its program
	// ended; what it carries could reach the next program, so there is
	// none.
	wedged   bool
	released bool
}

// ErrSpent is Run's error on a sandbox that cannot run another program:
// its last program ended without its agent's report (the sandbox was
// killed, or died), or its agent did not come back ready. Its caller
// takes a fresh sandbox for the program; no program ran.
var ErrSpent = errors.New("sandbox: cannot run another program")

type frame struct {
	kind    byte
	payload []byte
	err     error
}

// Profile is what the sandbox was created with.
func (s *Sandbox) Profile() Profile { return s.profile }

// Box is the sandbox's /box on the host.
func (s *Sandbox) Box() *Box { return s.box }

// KeepBox hands the box to the caller, who removes it: releasing the
// sandbox leaves it. A compile stage's box outlives its sandbox so that
// every run gets a copy of the build.
func (s *Sandbox) KeepBox() *Box {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepBox = true
	return s.box
}

// create makes a sandbox of profile p named id, starts it and waits
// until its agent is ready.
func (r *Runner) create(ctx context.Context, id string, p Profile, log *logrus.Entry) (_ *Sandbox, err error) {
	if r.cfg.AgentPath == "" {
		return nil, errors.New("sandbox: no runtimed-init to start sandboxes with")
	}
	ctx = r.namespaced(ctx)
	s := &Sandbox{ID: id, profile: p, r: r, log: log.WithField("sandbox", id)}
	// Whatever fails past here, what was made is removed. A failed task
	// creation may leave its shim running; once the container is gone,
	// that shim serves nothing (see stopOrphanShims).
	taskFailed := false
	defer func() {
		if err != nil {
			s.destroy()
		}
		if taskFailed {
			sctx, cancel := context.WithTimeout(r.namespaced(context.Background()), cleanupTimeout)
			defer cancel()
			if _, err := r.stopOrphanShims(sctx, id); err != nil {
				s.log.WithError(err).Warn("could not stop the shim of a failed task creation")
			}
		}
	}()
	t0 := time.Now()
	var marks []any
	mark := func(name string) { marks = append(marks, name, time.Since(t0).Milliseconds()) }
	defer func() {
		if err == nil && s.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
			s.log.WithField("steps_ms", fmt.Sprint(marks...)).Debug("sandbox created")
		}
	}()
	if s.box, err = r.newBox(id); err != nil {
		return nil, err
	}
	image, err := r.client.GetImage(ctx, p.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %s: %w", p.Image, ErrImageMissing)
		}
		return nil, fmt.Errorf("get image %s: %w", p.Image, err)
	}
	labels := map[string]string{labelSandbox: "true", labelInstance: r.cfg.Instance}
	// containerd's calls that make something (the snapshot, the
	// container, the task) run to their end even if ctx ends; a cancelled
	// ctx stops the creation between them. Cut off half-way, containerd
	// may still make the snapshot after the cleanup below looked for it,
	// and a task create cut off inside containerd 1.6 can leave its shim
	// running with no task to shut it down by.
	cctx, cancelCreate := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancelCreate()
	container, err := r.client.NewContainer(cctx, id,
		containerd.WithContainerLabels(labels),
		containerd.WithSnapshotter(r.cfg.Snapshotter),
		containerd.WithNewSnapshotView(id, image, snapshots.WithLabels(labels)),
		containerd.WithRuntime(r.cfg.RuntimeType, r.runtimeOptions()),
		containerd.WithNewSpec(
			coci.WithHostname("sandbox"),
			coci.WithCgroup(r.cgroupPath(id)),
			oci.WithIsolation(),
			oci.WithHardening(r.cfg.Hardening),
			oci.WithResources(oci.Resources{MemoryBytes: p.MemoryBytes, CPU: p.CPU, Pids: p.Pids}),
			oci.WithBox(s.box.Dir(), r.cfg.TmpBytes),
			oci.WithAgent(r.cfg.AgentPath),
			oci.WithSeccomp(),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	mark("container")

	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	s.toAgent, s.fromAgent = stdinW, stdoutW
	s.agentLog = newCappedBuffer(16<<10, nil)
	s.frames = make(chan frame, 64)
	s.stopFrames = make(chan struct{})
	go readFrames(stdoutR, s.frames, s.stopFrames)

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.task, err = container.NewTask(cctx, cio.NewCreator(
		cio.WithStreams(stdinR, stdoutW, s.agentLog),
		cio.WithFIFODir(r.cfg.RunDir),
	))
	if err != nil {
		taskFailed = true
		return nil, fmt.Errorf("create task: %w", err)
	}
	mark(" task")
	if err := r.setCPUBurst(r.cgroupPath(id), oci.CPUBurstUS(p.CPU)); err != nil {
		return nil, fmt.Errorf("set the sandbox's CPU burst: %w", err)
	}
	// Wait must not end with the request: the exit is needed for cleanup.
	waitCtx, cancelWait := context.WithCancel(r.namespaced(context.Background()))
	s.cancelWait = cancelWait
	if s.exitCh, err = s.task.Wait(waitCtx); err != nil {
		return nil, fmt.Errorf("wait task: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.task.Start(cctx); err != nil {
		return nil, fmt.Errorf("start task: %w", err)
	}
	mark(" start")
	select {
	case f := <-s.frames:
		if f.err != nil {
			return nil, fmt.Errorf("sandbox agent: %w", f.err)
		}
		var h agent.Hello
		if f.kind != agent.KindReady || json.Unmarshal(f.payload, &h) != nil || h.Protocol != agent.Protocol {
			return nil, fmt.Errorf("sandbox agent said %q %q, not ready (protocol %d)", f.kind, f.payload, agent.Protocol)
		}
	case st := <-s.exitCh:
		msg, _ := s.agentLog.result()
		return nil, fmt.Errorf("sandbox exited (status %d) before its agent was ready: %s", st.ExitCode(), msg)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	mark(" ready")
	if u, err := r.readUsage(r.cgroupPath(id)); err == nil {
		s.IdleMemoryBytes = u.MemoryBytes
	}
	return s, nil
}

// readFrames reads the agent's frames until its stdout ends or the
// sandbox no longer listens, then drains the rest so the shim's copy never
// blocks.
func readFrames(r *io.PipeReader, out chan<- frame, stop <-chan struct{}) {
	defer close(out)
	for {
		kind, payload, err := agent.ReadFrame(r, agent.MaxOutFrame)
		select {
		case out <- frame{kind: kind, payload: payload, err: err}:
		case <-stop:
			err = errStopped
		}
		if err != nil {
			// A broken stream is drained: the shim's copy must end.
			_, _ = io.Copy(io.Discard, r)
			return
		}
	}
}

var errStopped = errors.New("stopped")

// Program is what a sandbox runs: a command, its environment and stdin,
// and the limits runtimed enforces from the outside (wall time, output).
// Its memory, CPU and pids limits are the sandbox profile's.
type Program struct {
	Args   []string
	Env    []string
	Stdin  []byte
	Limits api.Limits
	// Deadline, if set, stops the program when it comes before its wall
	// time limit: its request's deadline.
	Deadline time.Time
	// FreshCPU starts the program with the CPU allowance of an idle
	// sandbox, whatever the programs before it in the sandbox used: its
	// quota for a period and the burst (refillCPU). A judged test runs
	// as it would in a sandbox of its own: a test is not slowed by the
	// quota its predecessors spent, and its wall time does not depend on
	// them. A session's runs share the session's CPU and do not set it.
	FreshCPU bool
	// OutOfMemory, if set, reports whether output holds the runtime's
	// own out-of-memory message (its language's markers): a runtime
	// that fails its allocations in its own way, short of the cgroup's
	// limit, still ran out of memory.
	OutOfMemory func(output string) bool

	// Input, if set, is the program's stdin as it comes, after Stdin:
	// each piece is written as it arrives, and the channel's close ends
	// the stdin. Without it the stdin ends after Stdin.
	Input <-chan []byte
	// Signals, if set, carries signals for the program's process group
	// while it runs.
	Signals <-chan syscall.Signal
	// Started, if set, is called when the program is sent to the agent.
	Started func()
	// Output, if set, is called with the program's output as it comes,
	// within the output limit, stream by stream ("stdout", "stderr"),
	// in the order it was relayed. It must not block for long: the
	// program's wall time runs meanwhile.
	Output func(stream string, data []byte)
	// StreamOnly, with Output, keeps none of the output for the result
	// (its stdout, stderr and output are empty): a program that runs
	// long and whose output its caller takes as it comes.
	StreamOnly bool
}

// Run runs the program and returns its verdict. An error means the
// platform failed; the program failing is a verdict in the result. Run
// may be called again while Reusable says so; otherwise it fails with
// ErrSpent, as it does when the agent is not ready for another program.
func (s *Sandbox) Run(ctx context.Context, prog Program) (result api.StageResult, err error) {
	if p := ProfileOf(s.profile.Image, prog.Limits); p != s.profile {
		return result, fmt.Errorf("sandbox: program limits %+v differ from the sandbox's %+v", p, s.profile)
	}
	s.mu.Lock()
	n, ok := s.runs, !s.released && (s.runs == 0 || s.reusable)
	s.runs++
	s.reusable = false
	s.mu.Unlock()
	if !ok {
		return result, ErrSpent
	}
	if n > 0 {
		if err := s.awaitReady(ctx, prog.Deadline); err != nil {
			return result, err
		}
	}
	// The warm pools refill when no program runs (see quietGap). A
	// program fed by its client as it goes (a connection, a repl's
	// interpreter) lasts as long as the client wants: it does not hold
	// the refills back.
	if prog.Input == nil {
		s.r.pools.programStarted()
		defer s.r.pools.programEnded()
	}
	o, err := s.run(ctx, prog)
	if err == nil && o.reported {
		s.mu.Lock()
		s.reusable = !s.wedged
		s.mu.Unlock()
	}
	if err != nil {
		return result, err
	}
	result = o.result()
	if result.Status, result.Message, err = verdict(o, prog.Limits, prog.OutOfMemory); err != nil {
		return result, err
	}
	s.log.WithFields(logrus.Fields{
		"status": result.Status, "exit_code": result.ExitCode, "wall_ms": result.WallTimeMS,
		"cpu_ms": result.CPUTimeMS, "memory_bytes": result.MemoryBytes,
		"oom_kills": o.use.OOMKills, "memory_limit_hits": o.use.MemoryLimitHits,
	}).Debug("sandbox finished")
	return result, nil
}

// Ready reports whether the sandbox can run a program now: it ran none
// yet, or it is Reusable.
func (s *Sandbox) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.released && (s.runs == 0 || s.reusable)
}

// Reusable reports whether the sandbox can run another program: its last
// one ended with its agent's report, so nothing but the agent runs in it.
func (s *Sandbox) Reusable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reusable && !s.released
}

// settleMemory waits, briefly, for the memory the previous program freed
// to leave the sandbox's cgroup before the next program's peak is reset:
// gVisor hands freed pages back to the host in the background. It waits
// while the cgroup holds more than the idle sandbox did and its usage
// keeps falling, at most settleMax.
func (s *Sandbox) settleMemory(cg string) {
	start := time.Now()
	first, err := s.r.memoryNow(cg)
	if err != nil {
		return
	}
	last, stalls := first, 0
	for last > s.IdleMemoryBytes+settleSlack && stalls < settleStalls && time.Since(start) < settleMax {
		time.Sleep(settleStep)
		now, err := s.r.memoryNow(cg)
		if err != nil {
			return
		}
		if now > last-settleProgress {
			stalls++
		} else {
			stalls = 0
		}
		last = now
	}
	if waited := time.Since(start); waited > settleStep {
		s.log.WithFields(logrus.Fields{"idle_bytes": s.IdleMemoryBytes, "from_bytes": first, "to_bytes": last, "waited_ms": waited.Milliseconds()}).Debug("waited for the previous program's memory to be released")
	}
}

// How settleMemory waits: a read every settleStep, until the usage is
// within settleSlack of the idle sandbox's, or has not fallen by
// settleProgress in settleStalls reads, or settleMax has passed.
const (
	settleMax      = 500 * time.Millisecond
	settleStep     = 5 * time.Millisecond
	settleSlack    = 16 << 20
	settleProgress = 256 << 10
	settleStalls   = 3
)

// awaitReady waits for the agent to say it is ready for another program:
// it has emptied /tmp. If it does not, the sandbox is spent.
func (s *Sandbox) awaitReady(ctx context.Context, deadline time.Time) error {
	wait := killGrace
	if !deadline.IsZero() {
		wait = max(min(wait, time.Until(deadline)), 0)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case f, ok := <-s.frames:
		var h agent.Hello
		if ok && f.err == nil && f.kind == agent.KindReady && json.Unmarshal(f.payload, &h) == nil {
			return nil
		}
		msg, _ := s.agentLog.result()
		s.log.WithFields(logrus.Fields{"frame": string(f.kind), "error": f.err, "agent": msg}).Warn("the sandbox's agent did not come back ready")
	case st := <-s.exitCh:
		msg, _ := s.agentLog.result()
		s.log.WithFields(logrus.Fields{"exit_code": st.ExitCode(), "agent": msg}).Warn("the sandbox ended between two programs")
	case <-t.C:
		s.log.Warn("the sandbox's agent was not ready for another program in time")
	case <-ctx.Done():
		return ctx.Err()
	}
	return ErrSpent
}

// run sends the program to the sandbox's agent and waits for it to end,
// for a limit to stop it or for the sandbox to die, and returns what
// happened. An error means the platform failed, or ctx ended.
func (s *Sandbox) run(ctx context.Context, prog Program) (outcome, error) {
	var o outcome
	log := s.log
	cg := s.r.cgroupPath(s.ID)
	if s.runs > 1 {
		s.settleMemory(cg)
	}
	// The first program too: a sandbox made for the request (no pooled
	// one was ready) has spent some of its bucket on its boot.
	if prog.FreshCPU {
		if err := s.r.refillCPU(cg); err != nil {
			log.WithError(err).Warn("refill the sandbox's CPU bandwidth")
		}
	}
	meter, merr := s.r.startMeter(cg)
	if merr != nil {
		log.WithError(merr).Warn("read sandbox cgroup")
	}

	exec, err := json.Marshal(agent.Exec{
		Args: prog.Args,
		Env:  oci.ProgramEnv(prog.Env),
		Dir:  oci.BoxDir,
		UID:  s.r.cfg.Hardening.UID,
		GID:  s.r.cfg.Hardening.GID,
	})
	if err != nil {
		return o, err
	}
	if len(exec)+64 > agent.MaxInFrame {
		return o, fmt.Errorf("sandbox: command line and environment of %d bytes are over %d", len(exec), agent.MaxInFrame)
	}
	if prog.Started != nil {
		prog.Started()
	}
	start := time.Now()
	if err := agent.WriteFrame(s.toAgent, agent.KindExec, exec); err != nil {
		return o, fmt.Errorf("send the program to the sandbox: %w", err)
	}
	stopInput := make(chan struct{})
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		s.sendInput(prog, stopInput)
	}()
	// The input sent for this program must all be in before the next
	// program's Exec. An agent that reported the exit reads (and drops)
	// it; where the sandbox is gone the sender is left to the pipe's close.
	defer func() {
		close(stopInput)
		if o.reported && !s.wait(inputDone) {
			log.Warn("the program's input was still being sent after its end; the sandbox runs no other program")
		}
	}()

	stopCh := make(chan killReason, 2)
	var stopOnce sync.Once
	stop := func(why killReason) { stopOnce.Do(func() { stopCh <- why }) }
	stdout := newCappedBuffer(prog.Limits.OutputBytes, func() { stop(killedOutput) })
	stderr := newCappedBuffer(prog.Limits.OutputBytes, func() { stop(killedOutput) })
	streamOnly := prog.StreamOnly && prog.Output != nil
	stdout.discard, stderr.discard = streamOnly, streamOnly
	var combined bytes.Buffer
	wall := time.Duration(prog.Limits.WallTimeMS) * time.Millisecond
	if !prog.Deadline.IsZero() {
		if left := time.Until(prog.Deadline); left < wall {
			wall, o.byDeadline = max(left, 0), true
		}
	}
	timer := time.NewTimer(wall)
	defer timer.Stop()
	cpuWatch := s.newCPUWatch(meter, time.Duration(prog.Limits.CPUTimeMS)*time.Millisecond)
	defer cpuWatch.stop()

	var (
		exit     *agent.Exit
		why      killReason
		status   containerd.ExitStatus
		exited   bool
		elapsed  time.Duration
		streamOK = true
	)
	handle := func(f frame) {
		switch {
		case f.err != nil:
			streamOK = false
		case f.kind == agent.KindStdout:
			kept := stdout.keep(f.payload)
			if !streamOnly {
				combined.Write(kept)
			}
			if prog.Output != nil && len(kept) > 0 {
				prog.Output("stdout", kept)
			}
		case f.kind == agent.KindStderr:
			kept := stderr.keep(f.payload)
			if !streamOnly {
				combined.Write(kept)
			}
			if prog.Output != nil && len(kept) > 0 {
				prog.Output("stderr", kept)
			}
		case f.kind == agent.KindExit:
			var e agent.Exit
			if err := json.Unmarshal(f.payload, &e); err != nil {
				log.WithError(err).Warn("sandbox agent: bad exit frame")
				streamOK = false
				return
			}
			exit = &e
			elapsed = time.Since(start)
			s.agentDone = true
		}
	}
loop:
	for exit == nil && streamOK {
		select {
		case f, ok := <-s.frames:
			if !ok {
				streamOK = false
				break loop
			}
			handle(f)
		case status = <-s.exitCh:
			exited = true
			break loop
		case <-timer.C:
			why = killedTimeout
			break loop
		case <-cpuWatch.c:
			if cpuWatch.spent() {
				why = killedCPUTime
				break loop
			}
		case why = <-stopCh:
			break loop
		case <-ctx.Done():
			why = killedCancelled
			break loop
		}
	}
	if exit == nil && streamOK && !exited && why != notKilled && why != killedCancelled {
		// Stopped at a limit: the agent kills the program and all it
		// started, and the sandbox can serve the next program. An agent
		// that does not report in time has its sandbox killed.
		elapsed = time.Since(start)
		exited, status, streamOK = s.killProgram(log, handle, &exit)
	}
	if exit == nil {
		if elapsed == 0 {
			elapsed = time.Since(start)
		}
		// The program did not end by itself: the sandbox is killed (or
		// died) and what it wrote before is collected.
		if !exited {
			status, exited = s.kill(log)
		}
		if exited {
			// The program ran until the sandbox was gone.
			if t := status.ExitTime(); !t.IsZero() && t.After(start) {
				elapsed = t.Sub(start)
			}
			s.drainFrames(log, handle)
		}
	}
	if why == killedCancelled {
		return o, ctx.Err()
	}
	if exit == nil && exited && status.Error() != nil {
		// Not an exit: the wait on containerd broke (it restarted).
		s.kill(log)
		return o, fmt.Errorf("lost the sandbox: %w", status.Error())
	}
	use, uerr := meter.read()
	if uerr != nil && merr == nil {
		log.WithError(uerr).Warn("read sandbox cgroup")
	}
	if exit != nil && exit.Error != "" {
		return o, fmt.Errorf("sandbox could not start the program: %s", exit.Error)
	}

	for _, st := range []struct {
		name string
		buf  *cappedBuffer
	}{{"stdout", stdout}, {"stderr", stderr}} {
		rest := st.buf.end()
		if !streamOnly {
			combined.Write(rest)
		}
		if prog.Output != nil && len(rest) > 0 {
			prog.Output(st.name, rest)
		}
	}
	o.stdout, o.stdoutTruncated = stdout.result()
	o.stderr, o.stderrTruncated = stderr.result()
	o.output = combined.String()
	o.elapsed = elapsed
	o.use = use
	o.why = why
	switch {
	case exit != nil:
		o.reported = true
		o.exitCode = exit.Code
		if exit.Signal > 0 {
			o.signal = unix.SignalName(syscall.Signal(exit.Signal))
		}
	case exited:
		// The sandbox ended without the agent's report: killed by
		// runtimed, or its kernel died (out of memory).
		o.sandboxStatus = status.ExitCode()
		o.agentSaid, _ = s.agentLog.result()
		o.exitCode = int(status.ExitCode())
		if o.exitCode == 0 || why != notKilled {
			o.exitCode = 128 + int(syscall.SIGKILL)
		}
		if o.exitCode > 128 && o.exitCode < 128+65 {
			o.signal = unix.SignalName(syscall.Signal(o.exitCode - 128))
		}
	case why != notKilled:
		// runtimed killed it for a limit, and the kill is slow to show
		// (a loaded host): the limit is the verdict all the same. The
		// sandbox is not used again; its removal goes on killing it,
		// and the janitor after that.
		o.agentSaid, _ = s.agentLog.result()
		o.sandboxStatus = 128 + uint32(syscall.SIGKILL)
		o.exitCode, o.signal = 128+int(syscall.SIGKILL), unix.SignalName(syscall.SIGKILL)
		log.Warn("the sandbox's exit after the kill was not seen; the limit's verdict stands")
	default:
		msg, _ := s.agentLog.result()
		return o, fmt.Errorf("sandbox did not exit after it was killed; agent said %q", msg)
	}
	return o, nil
}

// cpuWatch fires when the program may have spent its CPU time. The
// sandbox cannot use CPU faster than its quota (or the host's CPUs), so
// the limit cannot be reached before remaining/rate: the watch reads the
// cgroup then and again as the remainder shrinks, a handful of reads per
// run. The program may get past the limit by the CFS burst (one period's
// quota) and the watch's lateness, and burns on while the sandbox is
// stopped: the CPU time reported is what it used in all.
type cpuWatch struct {
	c     <-chan time.Time
	timer *time.Timer
	meter *meter
	limit time.Duration
	rate  float64
	log   *logrus.Entry
}

func (s *Sandbox) newCPUWatch(m *meter, limit time.Duration) *cpuWatch {
	w := &cpuWatch{meter: m, limit: limit, rate: min(s.profile.CPU, float64(runtime.NumCPU())), log: s.log}
	if limit <= 0 || m == nil || w.rate <= 0 {
		return w
	}
	w.timer = time.NewTimer(w.next(0))
	w.c = w.timer.C
	return w
}

func (w *cpuWatch) next(used time.Duration) time.Duration {
	return max(time.Duration(float64(w.limit-used)/w.rate), 2*time.Millisecond)
}

// spent reads the CPU time used and reports whether it reached the limit;
// if not, it sets the next check.
func (w *cpuWatch) spent() bool {
	used, err := w.meter.cpuUsed()
	if err != nil {
		// The wall time still bounds the program.
		w.log.WithError(err).Warn("read the sandbox's CPU time; CPU time limit not enforced for this run")
		w.c = nil
		return false
	}
	if used >= w.limit {
		return true
	}
	w.timer.Reset(w.next(used))
	return false
}

func (w *cpuWatch) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
}

// sendInput sends the program's stdin in frames, then its end, and the
// signals for it, until stop.
func (s *Sandbox) sendInput(prog Program, stop <-chan struct{}) {
	const piece = 256 << 10
	send := func(stdin []byte) bool {
		for len(stdin) > 0 {
			n := min(len(stdin), piece)
			if agent.WriteFrame(s.toAgent, agent.KindStdin, stdin[:n]) != nil {
				return false
			}
			stdin = stdin[n:]
			select {
			case <-stop:
				return false
			default:
			}
		}
		return true
	}
	if !send(prog.Stdin) {
		return
	}
	input, signals := prog.Input, prog.Signals
	if input == nil {
		if agent.WriteFrame(s.toAgent, agent.KindCloseStdin, nil) != nil {
			return
		}
	}
	for input != nil || signals != nil {
		select {
		case <-stop:
			return
		case data, ok := <-input:
			if !ok {
				input = nil
				if agent.WriteFrame(s.toAgent, agent.KindCloseStdin, nil) != nil {
					return
				}
				continue
			}
			if !send(data) {
				return
			}
		case sig, ok := <-signals:
			if !ok {
				signals = nil
				continue
			}
			if s.signal(agent.Signal{Signal: int(sig)}) != nil {
				return
			}
		}
	}
}

// signal sends a signal frame to the agent.
func (s *Sandbox) signal(sig agent.Signal) error {
	body, err := json.Marshal(sig)
	if err != nil {
		return err
	}
	return agent.WriteFrame(s.toAgent, agent.KindSignal, body)
}

// killProgram has the agent kill the program stopped at a limit, with
// everything else the sandbox user runs, and waits a grace for its
// report, taking the frames that come meanwhile. It returns whether the
// sandbox exited (and how) and whether its stream is still whole.
//
// The kill frame is written aside: a write to the agent can wait (behind
// the program's stdin, on an agent that reads no more), and the grace
// must hold all the same. A kill frame still unsent when the report came
// could reach the next program: the sandbox then runs no other.
func (s *Sandbox) killProgram(log *logrus.Entry, handle func(frame), exit **agent.Exit) (bool, containerd.ExitStatus, bool) {
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if err := s.signal(agent.Signal{Signal: int(syscall.SIGKILL), All: true}); err != nil {
			log.WithError(err).Debug("ask the sandbox's agent to kill its program")
		}
	}()
	t := time.NewTimer(agentKillGrace)
	defer t.Stop()
	for *exit == nil {
		select {
		case f, ok := <-s.frames:
			if !ok || f.err != nil {
				return false, containerd.ExitStatus{}, false
			}
			handle(f)
		case st := <-s.exitCh:
			return true, st, true
		case <-t.C:
			log.Warn("the sandbox's agent did not report its program's end after the kill; the sandbox is killed")
			return false, containerd.ExitStatus{}, false
		}
	}
	if !s.wait(sent) {
		log.Warn("the kill frame was still being sent after the program's end; the sandbox runs no other program")
	}
	return false, containerd.ExitStatus{}, true
}

// wait waits a grace for done; if it does not come, the sandbox is
// wedged: it runs no other program, and its release closes the pipe
// that held the write up.
func (s *Sandbox) wait(done <-chan struct{}) bool {
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		s.mu.Lock()
		s.wedged = true
		s.mu.Unlock()
		return false
	}
}

// agentKillGrace is how long the agent has to report a program it was
// told to kill before runtimed kills the sandbox instead.
const agentKillGrace = 3 * time.Second

// kill kills every process of the sandbox and waits for it to exit.
func (s *Sandbox) kill(log *logrus.Entry) (containerd.ExitStatus, bool) {
	kctx, cancel := context.WithTimeout(s.r.namespaced(context.Background()), killGrace)
	defer cancel()
	if err := s.task.Kill(kctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		log.WithError(err).Warn("kill sandbox")
	}
	select {
	case st := <-s.exitCh:
		return st, true
	case <-kctx.Done():
		log.Warn("sandbox did not exit after kill")
		return containerd.ExitStatus{}, false
	}
}

// drainFrames takes what the agent wrote before the sandbox ended: once
// the shim has copied all of the sandbox's output the stream is closed.
// The frames are taken while the copy goes on: the copy waits for them.
func (s *Sandbox) drainFrames(log *logrus.Entry, handle func(frame)) {
	go func() {
		done := make(chan struct{})
		go func() {
			s.task.IO().Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(killGrace):
			log.Warn("the sandbox's output was not all copied")
		}
		s.fromAgent.Close()
	}()
	for f := range s.frames {
		if f.err != nil {
			return
		}
		handle(f)
	}
}

// alive reports whether the sandbox still runs: a pooled one may have
// died while it waited, or lost its wait on containerd.
func (s *Sandbox) alive() bool {
	select {
	case st := <-s.exitCh:
		s.log.WithFields(logrus.Fields{"exit_code": st.ExitCode(), "error": st.Error()}).Debug("sandbox ended while idle")
		return false
	default:
		return true
	}
}

// Release destroys the sandbox in the background: the caller does not
// wait for the removal of what it used. The runner's Wait waits for it.
func (s *Sandbox) Release() {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	s.mu.Unlock()
	s.r.pending.Add(1)
	go func() {
		defer s.r.pending.Done()
		s.destroy()
		s.r.pools.poke()
	}()
}

// destroy removes the sandbox's task, container, snapshot and box (unless
// the box was kept), with its own deadline: never the request's. What
// containerd could not remove (it may be restarting) is left to the
// runner's janitor.
func (s *Sandbox) destroy() {
	start := time.Now()
	if s.toAgent != nil {
		if s.agentDone {
			// The agent waits for another program: it is told there is
			// none and exits, so the sandbox ends by itself. The write
			// must not hold the removal up.
			quit := make(chan struct{})
			go func() {
				defer close(quit)
				_ = agent.WriteFrame(s.toAgent, agent.KindQuit, nil)
			}()
			select {
			case <-quit:
			case <-time.After(exitGrace):
			}
		}
		s.toAgent.Close()
	}
	if s.stopFrames != nil {
		// The shim's copy of the agent's output must not block the
		// task's deletion.
		close(s.stopFrames)
	}
	for attempt := 1; ; attempt++ {
		err := s.remove()
		if err == nil {
			break
		}
		if attempt == removeAttempts {
			s.log.WithError(err).Warn("could not remove the sandbox; the janitor will")
			s.r.janitor.add(s.ID)
			if s.task != nil {
				// Deleting the task would have closed its FIFOs and
				// removed their directory; the janitor's task has none.
				s.task.IO().Cancel()
				_ = s.task.IO().Close()
			}
			break
		}
		time.Sleep(time.Second)
	}
	if s.fromAgent != nil {
		s.fromAgent.Close()
	}
	if s.cancelWait != nil {
		s.cancelWait()
	}
	s.mu.Lock()
	keep := s.keepBox
	s.mu.Unlock()
	if s.box != nil && !keep {
		if err := s.box.Remove(); err != nil {
			s.log.WithError(err).Warn("remove box")
		}
	}
	s.r.metrics.Phase(metrics.PhaseCleanup, time.Since(start))
}

// removeAttempts is how often destroy tries; the janitor goes on.
const removeAttempts = 3

// remove deletes what containerd holds of the sandbox. The task is
// deleted through the object that holds its IO, which closes its FIFOs;
// the rest is removed by id, as the janitor does.
func (s *Sandbox) remove() error {
	ctx, cancel := context.WithTimeout(s.r.namespaced(context.Background()), cleanupTimeout)
	defer cancel()
	if s.task != nil {
		// A sandbox whose agent reported is ending by itself: it needs
		// no kill (one runsc call fewer per execution).
		var grace time.Duration
		if s.agentDone {
			grace = exitGrace
		}
		if err := deleteTask(ctx, s.task, grace); err != nil {
			return fmt.Errorf("delete task: %w", err)
		}
		s.task = nil
	}
	return s.r.removeByID(ctx, s.ID)
}
