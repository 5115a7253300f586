package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/runtimed/runtimed/pkg/config"
	"github.com/runtimed/runtimed/pkg/execution"
	"github.com/runtimed/runtimed/pkg/metrics"
	"github.com/runtimed/runtimed/pkg/oci"
	"github.com/runtimed/runtimed/pkg/sandbox"
	"github.com/runtimed/runtimed/pkg/server"
)

// shutdownTimeout bounds how long in-flight executions may take to finish
// after SIGTERM or SIGINT.
const shutdownTimeout = 60 * time.Second

// loadConfig builds the configuration: defaults, then the file, then
// flags, then validation. A missing file at the default path means "use
// the defaults"; a missing file that was asked for is an error.
func loadConfig(c *cli.Context) (config.Config, error) {
	cfg := config.Default()
	path := c.String("config")
	if _, err := os.Stat(path); err == nil || c.IsSet("config") {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
	}
	if v := c.String("socket"); v != "" {
		cfg.Socket = v
	}
	if v := c.String("containerd"); v != "" {
		cfg.Containerd = v
	}
	if v := c.String("log-level"); v != "" {
		cfg.LogLevel = v
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func newLogger(c *cli.Context, level string) (*logrus.Logger, error) {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	log.SetLevel(lvl)
	switch c.String("log-format") {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "auto":
		if term.IsTerminal(int(os.Stderr.Fd())) {
			log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
		} else {
			log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
		}
	default:
		return nil, fmt.Errorf("unknown log format %q (text, json or auto)", c.String("log-format"))
	}
	return log, nil
}

func newClient(cfg config.Config) (*containerd.Client, error) {
	client, err := containerd.New(cfg.Containerd,
		containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithDefaultRuntime(cfg.Runtime.Type),
		containerd.WithTimeout(10*time.Second),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.Containerd, err)
	}
	return client, nil
}

func runnerConfig(cfg config.Config) sandbox.Config {
	return sandbox.Config{
		Namespace:     cfg.Namespace,
		Instance:      cfg.Instance,
		RuntimeType:   cfg.Runtime.Type,
		RuntimeBinary: cfg.Runtime.Binary,
		Snapshotter:   cfg.Runtime.Snapshotter,
		RunDir:        filepath.Join(cfg.StateDir, "runs", cfg.Instance),
		Hardening: oci.Hardening{
			UID:          cfg.Sandbox.UID,
			GID:          cfg.Sandbox.GID,
			MaxFileBytes: uint64(cfg.Sandbox.BoxBytes),
			OpenFiles:    cfg.Sandbox.OpenFiles,
		},
		BoxBytes:  cfg.Sandbox.BoxBytes,
		BoxInodes: cfg.Sandbox.BoxInodes,
		TmpBytes:  cfg.Sandbox.TmpBytes,
	}
}

func serveAction(c *cli.Context) error {
	// Signals are caught before the slow start-up, so a stop during it is
	// a clean one.
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	logger, err := newLogger(c, cfg.LogLevel)
	if err != nil {
		return err
	}
	log := logrus.NewEntry(logger).WithField("instance", cfg.Instance)

	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	defer client.Close()

	m := metrics.New()
	runner := sandbox.New(client, runnerConfig(cfg), m, log)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	left, err := runner.Reap(rctx)
	cancel()
	if err != nil {
		log.WithError(err).Error("could not remove every leftover of a previous run")
	}
	if left != (sandbox.Leftovers{}) {
		log.WithFields(logrus.Fields{"containers": left.Containers, "snapshots": left.Snapshots, "boxes": left.Boxes}).
			Warn("removed leftovers of a previous run")
	}

	apiServer := server.New(cfg, execution.New(runner, m), runner, m, log)
	l, grouped, err := server.ListenUnix(cfg.Socket, cfg.SocketGroup)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Socket, err)
	}
	if !grouped && cfg.SocketGroup != "" {
		log.Warnf("group %q does not exist; %s is owned by root:root, mode 0660", cfg.SocketGroup, cfg.Socket)
	}
	unixSrv := server.HTTPServer(apiServer, cfg.HTTP)
	unixSrv.ConnContext = server.UnixConnContext
	servers := []*http.Server{unixSrv}
	listeners := []net.Listener{l}
	if cfg.ListenTCP != "" {
		tl, err := net.Listen("tcp", cfg.ListenTCP)
		if err != nil {
			l.Close()
			return fmt.Errorf("listen on %s: %w", cfg.ListenTCP, err)
		}
		if len(cfg.Tokens) == 0 {
			log.Warnf("listen_tcp is set but no [[tokens]] are configured: every request on %s will be refused", cfg.ListenTCP)
		}
		servers = append(servers, server.HTTPServer(apiServer.TCPHandler(), cfg.HTTP))
		listeners = append(listeners, tl)
		log.WithField("tcp", tl.Addr().String()).Info("listening on TCP; every request needs a token")
	}

	errCh := make(chan error, len(servers))
	for i := range servers {
		go func(srv *http.Server, l net.Listener) { errCh <- srv.Serve(l) }(servers[i], listeners[i])
	}
	log.WithFields(logrus.Fields{"socket": cfg.Socket, "containerd": cfg.Containerd}).Info("runtimed is serving")

	select {
	case err := <-errCh:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping: waiting for in-flight executions")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.WithError(err).Warn("in-flight executions did not finish in time")
			_ = srv.Close()
		}
	}
	_ = os.Remove(cfg.Socket)
	log.Info("stopped")
	return nil
}
