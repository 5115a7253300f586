package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/runtimed/runtimed/internal/config"
)

// ListenUnix listens on the unix socket at path with mode 0660, owned by
// group when that group exists (the returned bool says whether it did).
// A stale socket file from a previous run is replaced; a live one is an
// error, so two daemons never share a socket.
func ListenUnix(path, group string) (net.Listener, bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, err
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, false, fmt.Errorf("%s: another daemon is listening there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, false, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, false, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, false, err
	}
	grouped := false
	if group != "" {
		g, err := user.LookupGroup(group)
		var unknown user.UnknownGroupError
		switch {
		case errors.As(err, &unknown):
		case err != nil:
			l.Close()
			return nil, false, err
		default:
			gid, _ := strconv.Atoi(g.Gid)
			if err := os.Chown(path, 0, gid); err != nil {
				l.Close()
				return nil, false, err
			}
			grouped = true
		}
	}
	return l, grouped, nil
}

// HTTPServer wraps h with the limits every listener gets: a client that
// trickles its headers or body is cut off instead of holding a worker,
// and headers are capped.
func HTTPServer(h http.Handler, c config.HTTP) *http.Server {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ms(c.ReadHeaderTimeoutMS),
		ReadTimeout:       ms(c.ReadTimeoutMS),
		IdleTimeout:       ms(c.IdleTimeoutMS),
		MaxHeaderBytes:    c.MaxHeaderBytes,
	}
}
