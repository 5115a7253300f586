package sandbox

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// The pool tests run in a synctest bubble: the pools' filler, their
// creations and their ticker are all in it, time is the bubble's, and
// synctest.Wait returns once the pools have done all they can, so each
// state is checked when it is settled, without polling.

// fakePools is a runner whose pools make and release sandboxes that are
// only records.
type fakePools struct {
	r        *Runner
	mu       sync.Mutex
	made     []string
	released map[string]bool
}

// newFakePools must be called in the test's bubble.
func newFakePools(t *testing.T) *fakePools {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	f := &fakePools{r: New(nil, Config{Instance: "test"}, nil, logrus.NewEntry(log)), released: map[string]bool{}}
	f.r.pools.make = func(_ context.Context, id string, p Profile) (*Sandbox, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.made = append(f.made, id)
		return &Sandbox{ID: id, profile: p, IdleMemoryBytes: 10 << 20}, nil
	}
	f.r.pools.release = func(s *Sandbox) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.released[s.ID] = true
	}
	t.Cleanup(f.r.pools.close)
	return f
}

func (f *fakePools) releasedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.released)
}

// expectPool lets the pools settle (a refill waits for quietGap after a
// take) and checks that the pool of p holds ready sandboxes, makes none
// and has the target.
func (f *fakePools) expectPool(t *testing.T, p Profile, what string, ready, target int) {
	t.Helper()
	time.Sleep(quietGap)
	synctest.Wait()
	for _, s := range f.r.Pools() {
		if s.Image == p.Image {
			if s.Ready != ready || s.Creating != 0 || s.Target != target {
				t.Fatalf("%s: pool %+v, want %d ready, none being made, target %d", what, s, ready, target)
			}
			return
		}
	}
	t.Fatalf("%s: no pool of %s in %+v", what, p.Image, f.r.Pools())
}

func TestPoolGrowsOnMissesAndShrinksWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePools(t)
		prof := Profile{Image: "python", MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}
		f.r.Configure([]PoolConfig{{Profile: prof, Size: 3}}, 1<<30)
		f.expectPool(t, prof, "one ready at first", 1, 1)

		first := f.r.pools.take(prof)
		if first == nil {
			t.Fatal("no sandbox from a pool with one ready")
		}
		if again := f.r.pools.take(prof); again != nil {
			t.Fatal("a second sandbox from a pool of one")
		}
		// The miss grew the pool.
		f.expectPool(t, prof, "grown to two", 2, 2)
		seen := map[string]bool{first.ID: true}
		for i := 0; i < 2; i++ {
			s := f.r.pools.take(prof)
			if s == nil || seen[s.ID] {
				t.Fatalf("take %d: %+v (a sandbox is given once)", i, s)
			}
			seen[s.ID] = true
		}
		// Both misses come before the filler makes a sandbox: the makes
		// wait at the gate.
		gate := make(chan struct{})
		orig := f.r.pools.make
		f.r.pools.make = func(ctx context.Context, id string, p Profile) (*Sandbox, error) {
			<-gate
			return orig(ctx, id, p)
		}
		f.r.pools.take(prof) // a miss: target 3
		f.r.pools.take(prof) // a miss at the size: the target stays 3
		close(gate)
		f.expectPool(t, prof, "grown to its size", 3, 3)

		// Without misses, the pool shrinks by one per interval, to one.
		// The filler's once-a-second tick trims: two ticks past the
		// interval leave time for one trim and not for two.
		before := f.releasedCount()
		time.Sleep(shrinkAfter + 2*time.Second)
		f.expectPool(t, prof, "shrunk to two", 2, 2)
		time.Sleep(shrinkAfter + 2*time.Second)
		f.expectPool(t, prof, "shrunk to one", 1, 1)
		time.Sleep(shrinkAfter + 2*time.Second)
		f.expectPool(t, prof, "never below one", 1, 1)
		if got := f.releasedCount() - before; got != 2 {
			t.Fatalf("%d sandboxes released while shrinking, want 2", got)
		}
	})
}

// A refill waits while programs run, and for quietGap after the last
// ends; a pool under its target for maxDefer refills even so.
func TestPoolRefillsWaitForAQuietMoment(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePools(t)
		prof := Profile{Image: "cpp", MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}
		f.r.Configure([]PoolConfig{{Profile: prof, Size: 2}}, 1<<30)
		f.expectPool(t, prof, "one ready at first", 1, 1)
		made := func() int {
			f.mu.Lock()
			defer f.mu.Unlock()
			return len(f.made)
		}
		// madeAfter lets d pass and checks that want sandboxes were made.
		madeAfter := func(d time.Duration, want int, when string) {
			t.Helper()
			time.Sleep(d)
			synctest.Wait()
			if n := made(); n != want {
				t.Fatalf("%d sandboxes made %s, want %d", n, when, want)
			}
		}

		// A program runs in the sandbox taken: no refill while it runs,
		// nor in the gaps between its programs.
		if f.r.pools.take(prof) == nil {
			t.Fatal("no sandbox from a pool with one ready")
		}
		f.r.pools.programStarted()
		time.Sleep(maxDefer / 2)
		synctest.Wait()
		f.r.pools.programEnded()
		time.Sleep(quietGap / 2)
		synctest.Wait()
		f.r.pools.programStarted()
		synctest.Wait()
		if n := made(); n != 1 {
			t.Fatalf("%d sandboxes made while programs ran %v after the take, want the first alone", n, maxDefer/2+quietGap/2)
		}
		f.r.pools.programEnded()
		madeAfter(quietGap-time.Millisecond, 1, "before quietGap passed without programs")
		time.Sleep(time.Millisecond)
		f.expectPool(t, prof, "refilled once quiet", 1, 1)

		// Programs that never stop: the pool refills after maxDefer.
		if f.r.pools.take(prof) == nil {
			t.Fatal("no sandbox from a refilled pool")
		}
		f.r.pools.programStarted()
		madeAfter(maxDefer-time.Millisecond, 2, "before maxDefer while a program ran")
		madeAfter(time.Millisecond, 3, "after maxDefer while a program ran")
		f.r.pools.programEnded()
	})
}

func TestPoolsKeepToTheirBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePools(t)
		a := Profile{Image: "a", MemoryBytes: 1, CPU: 1, Pids: 1}
		b := Profile{Image: "b", MemoryBytes: 1, CPU: 1, Pids: 1}
		// A pool not yet measured counts defaultIdleBytes a sandbox; these
		// measure 10 MiB. The budget holds one unmeasured sandbox.
		const budget = defaultIdleBytes
		f.r.Configure([]PoolConfig{{Profile: a, Size: 4}, {Profile: b, Size: 4}}, budget)
		held := func() (n int, bytes int64) {
			for _, s := range f.r.Pools() {
				per := s.IdleBytes
				if per == 0 {
					per = defaultIdleBytes
				}
				n += s.Ready + s.Creating
				bytes += int64(s.Ready+s.Creating) * per
			}
			return n, bytes
		}
		synctest.Wait()
		if n, _ := held(); n == 0 {
			t.Fatalf("no pooled sandbox within the budget: %+v", f.r.Pools())
		}
		// Whichever pool got one, make it want more: misses grow it, the
		// budget bounds it.
		for _, p := range []Profile{a, b} {
			for i := 0; i < 4; i++ {
				f.r.pools.take(p)
			}
		}
		time.Sleep(quietGap)
		synctest.Wait()
		if n, bytes := held(); bytes > budget || n == 0 {
			t.Fatalf("%d idle sandboxes, %d bytes by the pools' reckoning, over a budget of %d: %+v", n, bytes, budget, f.r.Pools())
		}
	})
}

func TestPoolsReconfiguredAndClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePools(t)
		a := Profile{Image: "a", MemoryBytes: 1, CPU: 1, Pids: 1}
		b := Profile{Image: "b", MemoryBytes: 1, CPU: 1, Pids: 1}
		f.r.Configure([]PoolConfig{{Profile: a, Size: 2}, {Profile: b, Size: 2}}, 1<<30)
		f.expectPool(t, a, "a ready", 1, 1)
		f.expectPool(t, b, "b ready", 1, 1)
		bReady := f.r.Pools()[1].Sandboxes

		// b is no longer configured: its sandboxes go.
		f.r.Configure([]PoolConfig{{Profile: a, Size: 2}}, 1<<30)
		if ps := f.r.Pools(); len(ps) != 1 || ps[0].Image != "a" {
			t.Fatalf("pools %+v, want a alone", ps)
		}
		f.mu.Lock()
		for _, id := range bReady {
			if !f.released[id] {
				t.Errorf("b's sandbox %s was not released", id)
			}
		}
		f.mu.Unlock()
		if f.r.pools.take(b) != nil {
			t.Fatal("a sandbox from a pool no longer configured")
		}

		// Closing releases every ready sandbox and ends the filling.
		f.r.pools.close()
		if f.r.pools.take(a) != nil {
			t.Fatal("a sandbox from closed pools")
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, id := range f.made {
			if !f.released[id] {
				t.Fatalf("sandbox %s made and never released after the pools closed", id)
			}
		}
	})
}

// A changed image empties its pools, also of a sandbox being made when it
// changed, and leaves the other pools alone; the pool refills.
func TestPoolsDropTheSandboxesOfAChangedImage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePools(t)
		gate := make(chan struct{})
		orig := f.r.pools.make
		f.r.pools.make = func(ctx context.Context, id string, p Profile) (*Sandbox, error) {
			if p.Image == "python" {
				<-gate
			}
			return orig(ctx, id, p)
		}
		py := Profile{Image: "python", MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}
		node := Profile{Image: "node", MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}
		f.r.Configure([]PoolConfig{{Profile: py, Size: 2}, {Profile: node, Size: 2}}, 1<<30)
		f.expectPool(t, node, "node filled", 1, 1)

		// python's first sandbox is being made (held at the gate) when its
		// image changes.
		var held string
		for _, p := range f.r.Pools() {
			if p.Image == "python" && p.Creating == 1 {
				held = p.Sandboxes[0]
			}
		}
		if held == "" {
			t.Fatalf("no python sandbox being made: %+v", f.r.Pools())
		}
		nodeBefore := f.r.Pools()[0].Sandboxes[0]
		f.r.ImageChanged("python")
		gate <- struct{}{}
		close(gate)
		f.expectPool(t, py, "python refilled", 1, 1)
		f.mu.Lock()
		heldReleased := f.released[held]
		nodeReleased := f.released[nodeBefore]
		f.mu.Unlock()
		if !heldReleased {
			t.Errorf("the sandbox made from the old image (%s) was kept", held)
		}
		if nodeReleased {
			t.Errorf("node's sandbox %s was released for python's image change", nodeBefore)
		}
		for _, p := range f.r.Pools() {
			if p.Image == "python" && (len(p.Sandboxes) != 1 || p.Sandboxes[0] == held) {
				t.Errorf("python's pool holds %v, want one new sandbox", p.Sandboxes)
			}
		}

		// A ready sandbox is released too.
		ready := ""
		for _, p := range f.r.Pools() {
			if p.Image == "python" {
				ready = p.Sandboxes[0]
			}
		}
		f.r.ImageChanged("python")
		f.expectPool(t, py, "python refilled again", 1, 1)
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.released[ready] {
			t.Errorf("ready sandbox %s of the old image was kept", ready)
		}
	})
}

// A pool whose image is missing retries for as long as it exists, with a
// backoff; its log has a warning at the first failure and every 20th,
// not one a retry, and says when it fills again.
func TestPoolFailuresAreLoggedSparingly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakePools(t)
		log, hook := test.NewNullLogger()
		log.SetLevel(logrus.DebugLevel)
		f.r.log = logrus.NewEntry(log)
		var mu sync.Mutex
		failing := true
		f.r.pools.make = func(_ context.Context, id string, p Profile) (*Sandbox, error) {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return nil, errors.New("image missing")
			}
			return &Sandbox{ID: id, profile: p, IdleMemoryBytes: 10 << 20}, nil
		}
		p := Profile{Image: "a", MemoryBytes: 1, CPU: 1, Pids: 1}
		f.r.Configure([]PoolConfig{{Profile: p, Size: 1}}, 1<<30)
		// 45 tries: 1+2+4+8+16 s, then every 30 s.
		time.Sleep(31*time.Second + 40*maxBackoff)
		synctest.Wait()
		count := func(level logrus.Level, msg string) (n int) {
			for _, e := range hook.AllEntries() {
				if e.Level == level && e.Message == msg {
					n++
				}
			}
			return n
		}
		const msg = "could not fill a warm pool; retrying later"
		warn, debug := count(logrus.WarnLevel, msg), count(logrus.DebugLevel, msg)
		if warn+debug < 40 {
			t.Fatalf("%d tries in %s, want a retry every %s at most", warn+debug, 31*time.Second+40*maxBackoff, maxBackoff)
		}
		if want := 1 + (warn+debug)/20; warn != want {
			t.Errorf("%d warnings for %d failures, want %d", warn, warn+debug, want)
		}
		mu.Lock()
		failing = false
		mu.Unlock()
		time.Sleep(maxBackoff)
		f.expectPool(t, p, "after the image came", 1, 1)
		if n := count(logrus.InfoLevel, "a warm pool fills again"); n != 1 {
			t.Errorf("%d 'fills again' lines, want 1", n)
		}
	})
}
