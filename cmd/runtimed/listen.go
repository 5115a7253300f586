package main

import (
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/server"
)

type listenKind int

const (
	listenUnix listenKind = iota
	listenTCP
	listenMetrics
)

type listener struct {
	net.Listener
	kind listenKind
}

// activated reports whether systemd passed runtimed its sockets.
func activated() bool { return os.Getenv("LISTEN_FDS") != "" }

// listen opens runtimed's listeners: the unix socket — the one systemd
// passed (socket activation) if it did, else runtimed's own — and the
// TCP and metrics listeners the config asks for.
func listen(cfg config.Config, log *logrus.Entry) ([]listener, error) {
	var out []listener
	fail := func(err error) ([]listener, error) {
		for _, l := range out {
			l.Close()
		}
		return nil, err
	}
	passed, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	for _, l := range passed {
		if l == nil {
			continue
		}
		switch l.Addr().Network() {
		case "unix":
			out = append(out, listener{l, listenUnix})
			log.WithField("socket", l.Addr().String()).Info("using the socket systemd passed")
		default:
			l.Close()
			return fail(fmt.Errorf("socket activation passed a %s socket; runtimed takes only its unix socket from systemd", l.Addr().Network()))
		}
	}
	if len(out) == 0 {
		l, grouped, err := server.ListenUnix(cfg.Socket, cfg.SocketGroup)
		if err != nil {
			return fail(fmt.Errorf("listen on %s: %w", cfg.Socket, err))
		}
		if !grouped && cfg.SocketGroup != "" {
			log.Warnf("group %q does not exist; %s is owned by root:root, mode 0660", cfg.SocketGroup, cfg.Socket)
		}
		out = append(out, listener{l, listenUnix})
	}
	if cfg.ListenTCP != "" {
		l, err := net.Listen("tcp", cfg.ListenTCP)
		if err != nil {
			return fail(fmt.Errorf("listen on %s: %w", cfg.ListenTCP, err))
		}
		if len(cfg.Tokens) == 0 {
			log.Warnf("listen_tcp is set but no [[tokens]] are configured: every request on %s will be refused", cfg.ListenTCP)
		}
		log.WithField("tcp", l.Addr().String()).Info("listening on TCP; every request needs a token")
		out = append(out, listener{l, listenTCP})
	}
	if cfg.MetricsListen != "" {
		l, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fail(fmt.Errorf("listen on %s: %w", cfg.MetricsListen, err))
		}
		log.WithField("metrics", l.Addr().String()).Info("serving /metrics")
		out = append(out, listener{l, listenMetrics})
	}
	return out, nil
}
