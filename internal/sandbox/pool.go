package sandbox

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
)

// PoolConfig is one warm pool: sandboxes of Profile created and started
// ahead of time, at most Size of them.
type PoolConfig struct {
	Profile Profile
	Size    int
}

// Pool sizing. A pool starts with one sandbox and grows by one each time
// a request finds it empty, up to its size; after shrinkAfter without
// such a miss it shrinks by one, down to one.
const (
	shrinkAfter = 30 * time.Second
	// createTimeout bounds the creation of one pooled sandbox.
	createTimeout = time.Minute
	// maxCreating is how many pooled sandboxes are created at once: the
	// creation takes CPU from the programs running.
	maxCreating = 2
	// defaultIdleBytes is what an idle sandbox is reckoned to hold before
	// one of its pool was measured.
	defaultIdleBytes = 64 << 20
	maxBackoff       = 30 * time.Second
	// A refill waits for a quiet moment: no program running, and none
	// for quietGap. Making a sandbox takes the CPU of a whole core for a
	// few hundred milliseconds (containerd, the shim, runsc's start, the
	// Sentry's boot), which the programs running beside it lose: a judged
	// request's tests, or the compile it follows. Between two programs of
	// one request (tests, or compile and run) there are milliseconds;
	// quietGap is longer. A pool under its target for maxDefer refills
	// even so: a host never quiet still gets its pools back.
	quietGap = 100 * time.Millisecond
	maxDefer = 3 * time.Second
)

// pools are the runner's warm pools, one per profile, filled in the
// background within a memory budget.
type pools struct {
	r        *Runner
	mu       sync.Mutex
	all      map[Profile]*pool
	budget   int64
	creating int
	closed   bool
	wake     chan struct{}
	stop     chan struct{}
	started  bool
	// ctx ends the creations under way when the pools close; creations
	// counts them, so that closing waits for them to clean up.
	ctx       context.Context
	cancel    context.CancelFunc
	creations sync.WaitGroup
	// running counts the programs running in sandboxes now; active is
	// when one last started or ended, or a sandbox was taken.
	running int
	active  time.Time
	// make and release are the runner's (tests put others).
	make    func(ctx context.Context, id string, p Profile) (*Sandbox, error)
	release func(*Sandbox)
}

type pool struct {
	profile   Profile
	size      int
	target    int
	ready     []*Sandbox
	creating  map[string]bool // ids; false once the image changed under it
	lastMiss  time.Time
	lastTrim  time.Time
	idleBytes int64 // the last measured idle sandbox
	// short is since when the pool has been under its target (zero when
	// it is not).
	short    time.Time
	failures int
	retryAt  time.Time
	retired  bool
}

func newPools(r *Runner) *pools {
	ctx, cancel := context.WithCancel(context.Background())
	return &pools{r: r, all: map[Profile]*pool{}, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		ctx: ctx, cancel: cancel,
		make: func(ctx context.Context, id string, p Profile) (*Sandbox, error) {
			return r.create(ctx, id, p, r.log.WithField("pool", p.Image))
		},
		release: (*Sandbox).Release,
	}
}

// Configure sets the pools and their memory budget (bytes of all idle
// sandboxes together) and starts filling them. Pools no longer configured
// are emptied; a pool whose size changed keeps its sandboxes.
func (r *Runner) Configure(cfgs []PoolConfig, budget int64) {
	p := r.pools
	p.mu.Lock()
	p.budget = budget
	want := map[Profile]int{}
	for _, c := range cfgs {
		if c.Size > 0 {
			want[c.Profile] = c.Size
		}
	}
	var drop []*Sandbox
	for prof, pl := range p.all {
		if size, ok := want[prof]; ok {
			pl.size = size
			pl.target = min(pl.target, size)
			continue
		}
		pl.retired = true
		drop = append(drop, pl.ready...)
		pl.ready = nil
		delete(p.all, prof)
	}
	for prof, size := range want {
		if _, ok := p.all[prof]; !ok {
			p.all[prof] = &pool{profile: prof, size: size, target: 1, creating: map[string]bool{}}
		}
	}
	start := !p.started && !p.closed
	p.started = true
	p.mu.Unlock()
	for _, s := range drop {
		p.release(s)
	}
	if start {
		go p.fill()
	}
	p.poke()
}

func (p *pools) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns a ready sandbox of profile prof, or nil. A request that
// finds its pool empty grows it.
func (p *pools) take(prof Profile) *Sandbox {
	p.mu.Lock()
	pl := p.all[prof]
	if pl == nil || p.closed {
		p.mu.Unlock()
		return nil
	}
	var s *Sandbox
	var dead []*Sandbox
	for len(pl.ready) > 0 && s == nil {
		c := pl.ready[0]
		pl.ready = pl.ready[1:]
		if c.alive() {
			s = c
		} else {
			dead = append(dead, c)
		}
	}
	now := time.Now()
	p.active = now
	if s == nil {
		pl.lastMiss = now
		pl.target = min(pl.target+1, pl.size)
	}
	pl.checkShort(now)
	p.mu.Unlock()
	for _, d := range dead {
		p.r.log.WithField("sandbox", d.ID).Warn("a pooled sandbox had died; removing it")
		p.release(d)
	}
	p.r.metrics.Pool(prof.Image, s != nil)
	if s == nil {
		p.poke()
	}
	// A hit refills at the next quiet moment (see quietGap).
	return s
}

// programStarted and programEnded keep the count of programs running,
// for the refills to wait for a quiet moment.
func (p *pools) programStarted() {
	p.mu.Lock()
	p.running++
	p.active = time.Now()
	p.mu.Unlock()
}

func (p *pools) programEnded() {
	p.mu.Lock()
	p.running--
	p.active = time.Now()
	quiet := p.running == 0
	p.mu.Unlock()
	if quiet {
		p.poke()
	}
}

// checkShort notes since when the pool has been under its target.
func (pl *pool) checkShort(now time.Time) {
	if len(pl.ready)+len(pl.creating) >= pl.target {
		pl.short = time.Time{}
	} else if pl.short.IsZero() {
		pl.short = now
	}
}

// fill keeps the pools at their targets until the pools are closed.
func (p *pools) fill() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	later := time.NewTimer(time.Hour)
	later.Stop()
	defer later.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-tick.C:
		case <-later.C:
		}
		p.trim()
		for {
			started, next := p.startOne()
			if started {
				continue
			}
			if !next.IsZero() {
				later.Reset(time.Until(next))
			}
			break
		}
	}
}

// trim shrinks the pools that had no miss for a while.
func (p *pools) trim() {
	now := time.Now()
	var drop []*Sandbox
	p.mu.Lock()
	for _, pl := range p.all {
		if pl.target > 1 && now.Sub(pl.lastMiss) > shrinkAfter && now.Sub(pl.lastTrim) > shrinkAfter {
			pl.target--
			pl.lastTrim = now
		}
		for len(pl.ready) > pl.target {
			drop = append(drop, pl.ready[0])
			pl.ready = pl.ready[1:]
		}
	}
	p.mu.Unlock()
	for _, s := range drop {
		p.release(s)
	}
}

// startOne starts the creation of one pooled sandbox where a pool is
// under its target, the budget allows, fewer than maxCreating are under
// way, and the host is quiet or the pool waited maxDefer. It reports
// whether it started one, and otherwise when a pool that waits for a
// quiet moment should be looked at again (zero: at the next wake).
func (p *pools) startOne() (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.creating >= maxCreating {
		return false, time.Time{}
	}
	now := time.Now()
	var held int64
	for _, pl := range p.all {
		held += int64(len(pl.ready)+len(pl.creating)) * pl.estimate()
	}
	quiet := p.running == 0 && now.Sub(p.active) >= quietGap
	var best *pool
	var next time.Time
	for _, pl := range p.all {
		pl.checkShort(now)
		if pl.short.IsZero() || now.Before(pl.retryAt) || held+pl.estimate() > p.budget {
			continue
		}
		if !quiet && now.Sub(pl.short) < maxDefer {
			at := pl.short.Add(maxDefer)
			if q := p.active.Add(quietGap); p.running == 0 && q.Before(at) {
				at = q
			}
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		// The emptiest pool first.
		if best == nil || len(best.ready)+len(best.creating) > len(pl.ready)+len(pl.creating) {
			best = pl
		}
	}
	if best == nil {
		return false, next
	}
	id, err := newID()
	if err != nil {
		return false, time.Time{}
	}
	best.creating[id] = true
	best.checkShort(now)
	p.creating++
	p.creations.Add(1)
	go p.create(best, id)
	return true, time.Time{}
}

func (pl *pool) estimate() int64 {
	if pl.idleBytes > 0 {
		return pl.idleBytes
	}
	return defaultIdleBytes
}

func (p *pools) create(pl *pool, id string) {
	defer p.creations.Done()
	ctx, cancel := context.WithTimeout(p.ctx, createTimeout)
	start := time.Now()
	s, err := p.make(ctx, id, pl.profile)
	cancel()
	p.mu.Lock()
	current := pl.creating[id]
	delete(pl.creating, id)
	p.creating--
	keep := err == nil && current && !pl.retired && !p.closed
	failures := pl.failures
	if err != nil {
		pl.failures++
		failures = pl.failures
		backoff := min(maxBackoff, time.Second<<min(pl.failures-1, 5))
		pl.retryAt = time.Now().Add(backoff)
	} else {
		pl.failures = 0
		if s.IdleMemoryBytes > 0 {
			pl.idleBytes = s.IdleMemoryBytes
		}
	}
	if keep {
		pl.ready = append(pl.ready, s)
	}
	p.mu.Unlock()
	if err != nil {
		if p.ctx.Err() == nil {
			// A pool that cannot fill (its image is missing) retries
			// for as long as it exists: the first failure of a streak
			// is a warning, and every 20th; the rest are debug.
			log := p.r.log.WithError(err).WithFields(logrus.Fields{"image": pl.profile.Image, "failures": failures})
			if failures == 1 || failures%20 == 0 {
				log.Warn("could not fill a warm pool; retrying later")
			} else {
				log.Debug("could not fill a warm pool; retrying later")
			}
		}
		return
	}
	if failures > 0 {
		p.r.log.WithFields(logrus.Fields{"image": pl.profile.Image, "failures": failures}).Info("a warm pool fills again")
	}
	p.r.metrics.Phase(metrics.PhasePoolCreate, time.Since(start))
	if !keep {
		p.release(s)
	}
	p.poke()
}

// close stops the filling, ends the creations under way and releases
// every pooled sandbox; it returns once the creations have ended (each
// cleans up after itself or is released).
func (p *pools) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.stop)
	p.cancel()
	var drop []*Sandbox
	for _, pl := range p.all {
		drop = append(drop, pl.ready...)
		pl.ready = nil
	}
	p.mu.Unlock()
	for _, s := range drop {
		p.release(s)
	}
	p.creations.Wait()
}

// ImageChanged empties the pools of image ref, which was replaced or
// removed: their sandboxes, ready or being made, are of the old image and
// are released; the pools refill from the new one at the next quiet
// moment (or, if it is gone, fail to until it is back).
func (r *Runner) ImageChanged(ref string) {
	p := r.pools
	p.mu.Lock()
	var drop []*Sandbox
	for prof, pl := range p.all {
		if prof.Image != ref {
			continue
		}
		drop = append(drop, pl.ready...)
		pl.ready = nil
		for id := range pl.creating {
			pl.creating[id] = false
		}
		pl.failures, pl.retryAt = 0, time.Time{}
	}
	p.mu.Unlock()
	for _, s := range drop {
		p.release(s)
	}
	p.poke()
}

// Pools reports the state of each pool.
func (r *Runner) Pools() []api.Pool {
	p := r.pools
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]api.Pool, 0, len(p.all))
	for _, pl := range p.all {
		ap := api.Pool{
			Image: pl.profile.Image, MemoryBytes: pl.profile.MemoryBytes, CPU: pl.profile.CPU, Pids: pl.profile.Pids,
			Ready: len(pl.ready), Creating: len(pl.creating), Target: pl.target, Size: pl.size, IdleBytes: pl.idleBytes,
			Sandboxes: []string{},
		}
		for _, s := range pl.ready {
			ap.Sandboxes = append(ap.Sandboxes, s.ID)
		}
		for id := range pl.creating {
			ap.Sandboxes = append(ap.Sandboxes, id)
		}
		out = append(out, ap)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Image != out[j].Image {
			return out[i].Image < out[j].Image
		}
		return out[i].MemoryBytes < out[j].MemoryBytes
	})
	return out
}
