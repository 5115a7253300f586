package sandbox

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// fakePools is a runner whose pools make and release sandboxes that are
// only records, on a clock the test moves.
type fakePools struct {
	r        *Runner
	mu       sync.Mutex
	made     []string
	released map[string]bool
	clock    time.Time
}

func newFakePools(t *testing.T) *fakePools {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	f := &fakePools{r: New(nil, Config{Instance: "test"}, nil, logrus.NewEntry(log)), released: map[string]bool{}, clock: time.Now()}
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
	f.r.pools.now = func() time.Time {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.clock
	}
	t.Cleanup(f.r.pools.close)
	return f
}

func (f *fakePools) advance(d time.Duration) {
	f.mu.Lock()
	f.clock = f.clock.Add(d)
	f.mu.Unlock()
	f.r.pools.poke()
}

func (f *fakePools) releasedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.released)
}

// waitPool waits until the pool of p satisfies ok.
func (f *fakePools) waitPool(t *testing.T, p Profile, what string, ok func(ready, target int) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, s := range f.r.Pools() {
			if s.Image == p.Image && s.Creating == 0 && ok(s.Ready, s.Target) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: pools %+v", what, f.r.Pools())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPoolGrowsOnMissesAndShrinksWhenIdle(t *testing.T) {
	f := newFakePools(t)
	prof := Profile{Image: "python", MemoryBytes: 128 << 20, CPU: 0.5, Pids: 64}
	f.r.Configure([]PoolConfig{{Profile: prof, Size: 3}}, 1<<30)
	f.waitPool(t, prof, "one ready at first", func(r, tg int) bool { return r == 1 && tg == 1 })

	first := f.r.pools.take(prof)
	if first == nil {
		t.Fatal("no sandbox from a pool with one ready")
	}
	if again := f.r.pools.take(prof); again != nil {
		t.Fatal("a second sandbox from a pool of one")
	}
	// The miss grew the pool.
	f.waitPool(t, prof, "grown to two", func(r, tg int) bool { return r == 2 && tg == 2 })
	seen := map[string]bool{first.ID: true}
	for i := 0; i < 2; i++ {
		s := f.r.pools.take(prof)
		if s == nil || seen[s.ID] {
			t.Fatalf("take %d: %+v (a sandbox is given once)", i, s)
		}
		seen[s.ID] = true
	}
	f.r.pools.take(prof) // a miss: target 3
	f.r.pools.take(prof) // a miss at the size: the target stays 3
	f.waitPool(t, prof, "grown to its size", func(r, tg int) bool { return r == 3 && tg == 3 })

	// Without misses, the pool shrinks by one per interval, to one.
	before := f.releasedCount()
	f.advance(shrinkAfter + time.Second)
	f.waitPool(t, prof, "shrunk to two", func(r, tg int) bool { return r == 2 && tg == 2 })
	f.advance(shrinkAfter + time.Second)
	f.waitPool(t, prof, "shrunk to one", func(r, tg int) bool { return r == 1 && tg == 1 })
	f.advance(shrinkAfter + time.Second)
	time.Sleep(100 * time.Millisecond)
	f.waitPool(t, prof, "never below one", func(r, tg int) bool { return r == 1 && tg == 1 })
	if got := f.releasedCount() - before; got != 2 {
		t.Fatalf("%d sandboxes released while shrinking, want 2", got)
	}
}

func TestPoolsKeepToTheirBudget(t *testing.T) {
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
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := held(); n == 0; n, _ = held() {
		if time.Now().After(deadline) {
			t.Fatal("no pooled sandbox within the budget")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Whichever pool got one, make it want more: misses grow it, the
	// budget bounds it.
	for _, p := range []Profile{a, b} {
		for i := 0; i < 4; i++ {
			f.r.pools.take(p)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n, bytes := held(); bytes > budget || n == 0 {
		t.Fatalf("%d idle sandboxes, %d bytes by the pools' reckoning, over a budget of %d: %+v", n, bytes, budget, f.r.Pools())
	}
}

func TestPoolsReconfiguredAndClosed(t *testing.T) {
	f := newFakePools(t)
	a := Profile{Image: "a", MemoryBytes: 1, CPU: 1, Pids: 1}
	b := Profile{Image: "b", MemoryBytes: 1, CPU: 1, Pids: 1}
	f.r.Configure([]PoolConfig{{Profile: a, Size: 2}, {Profile: b, Size: 2}}, 1<<30)
	f.waitPool(t, a, "a ready", func(r, _ int) bool { return r == 1 })
	f.waitPool(t, b, "b ready", func(r, _ int) bool { return r == 1 })
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
}

// A changed image empties its pools, also of a sandbox being made when it
// changed, and leaves the other pools alone; the pool refills.
func TestPoolsDropTheSandboxesOfAChangedImage(t *testing.T) {
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
	f.waitPool(t, node, "node filled", func(ready, _ int) bool { return ready == 1 })

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
	f.waitPool(t, py, "python refilled", func(ready, _ int) bool { return ready == 1 })
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
	f.waitPool(t, py, "python refilled again", func(r, _ int) bool { return r == 1 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.released[ready] {
		t.Errorf("ready sandbox %s of the old image was kept", ready)
	}
}
