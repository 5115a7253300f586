package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/runtimed/runtimed/internal/config"
)

// client is who sent a request on the TCP listener: a token's holder.
type client struct {
	name    string
	hash    [sha256.Size]byte
	limits  config.TokenLimits
	limiter *rate.Limiter
	slots   chan struct{}
	waiting atomic.Int64 // stages waiting for a place
	// lastUsed is when a request last carried the token (Unix ns).
	lastUsed atomic.Int64
}

// contended reports whether a stage waits for one of the client's places.
func (c *client) contended() bool { return c.waiting.Load() > 0 }

// tokens authenticates bearer tokens against the configured SHA-256
// hashes and holds each token's rate limiter and sandbox places.
type tokens struct {
	clients []*client
}

// newTokens builds the clients of the configured tokens, but for the
// revoked ones. A client of prev with the same name, hash and limits is
// kept as it is, with its rate and slots: a reload does not reset them.
func newTokens(cfg []config.Token, def config.TokenLimits, prev *tokens, revoked *revoked) *tokens {
	t := &tokens{}
	for _, c := range cfg {
		lim := c.Limits(def)
		var h [sha256.Size]byte
		raw, _ := hex.DecodeString(c.SHA256) // validated with the config
		copy(h[:], raw)
		if revoked.has(h) {
			continue
		}
		if old := prev.find(c.Name); old != nil && old.hash == h && old.limits == lim {
			t.clients = append(t.clients, old)
			continue
		}
		t.clients = append(t.clients, &client{
			name:    c.Name,
			hash:    h,
			limits:  lim,
			limiter: rate.NewLimiter(rate.Limit(lim.RatePerMinute/60), lim.Burst),
			slots:   make(chan struct{}, lim.MaxConcurrent),
		})
	}
	return t
}

func (t *tokens) find(name string) *client {
	if t == nil {
		return nil
	}
	for _, c := range t.clients {
		if c.name == name {
			return c
		}
	}
	return nil
}

// authenticate returns the client whose token the request carries. Every
// configured hash is compared, in constant time, whatever matches.
func (t *tokens) authenticate(r *http.Request) *client {
	scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	var found *client
	for _, c := range t.clients {
		if subtle.ConstantTimeCompare(sum[:], c.hash[:]) == 1 {
			found = c
		}
	}
	return found
}

// admitRate takes one request from the client's bucket, or says how long
// to wait for one.
func (c *client) admitRate() (time.Duration, bool) {
	res := c.limiter.Reserve()
	if d := res.Delay(); d > 0 || !res.OK() {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// acquire takes one of the client's sandbox places: without waiting for
// the first stage of a request (false when all are in use), else waiting
// until ctx ends (false then).
func (c *client) acquire(ctx context.Context, first bool) (func(), bool) {
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, true
	default:
	}
	if first {
		return nil, false
	}
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, true
	case <-ctx.Done():
		return nil, false
	}
}

const clientKey ctxKey = 1

func clientFrom(ctx context.Context) *client {
	c, _ := ctx.Value(clientKey).(*client)
	return c
}

// retryAfter is a Retry-After value: whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}

// peerKey holds the credentials of a unix socket's peer.
const peerKey ctxKey = 2

// UnixConnContext records the peer's credentials (SO_PEERCRED) of a
// connection on the unix socket, for the request log.
func UnixConnContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey, cred)
}
