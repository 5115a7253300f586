package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/image"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/internal/server"
	"github.com/runtimed/runtimed/internal/session"
	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/oci"
)

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
	// --recipes and --cache are global flags and image build's; --mirror
	// is image build's.
	for flag, key := range map[string]*string{"recipes": &cfg.Images.Recipes, "cache": &cfg.Images.Cache, "mirror": &cfg.Images.Mirror} {
		if v := c.String(flag); v != "" {
			if flag != "mirror" {
				if abs, err := filepath.Abs(v); err == nil {
					v = abs
				}
			}
			*key = v
		}
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
		Containerd:    cfg.Containerd,
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
		AgentPath: agentPath(cfg.Runtime.Init),
	}
}

// agentPath finds runtimed-init: where the configuration says, else next
// to the runtimed binary (a build tree, make run), else where the package
// installs it.
func agentPath(configured string) string {
	if configured != "" {
		return configured
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "runtimed-init")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/usr/lib/runtimed/runtimed-init"
}

// poolConfigs are the warm pools cfg asks for: per language with a pool
// size, one for its run stage at the default limits and, for a compiled
// language, one for its compile stage.
func poolConfigs(cfg config.Config) []sandbox.PoolConfig {
	if !cfg.Pool.Enabled {
		return nil
	}
	var out []sandbox.PoolConfig
	for _, l := range cfg.Languages {
		if l.PoolSize == 0 {
			continue
		}
		profile := func(d config.Limits) sandbox.Profile {
			return sandbox.Profile{Image: l.Image, MemoryBytes: d.MemoryBytes, CPU: d.CPU, Pids: d.Pids}
		}
		run, compile := language.StageDefaults(cfg, l)
		out = append(out, sandbox.PoolConfig{Profile: profile(run), Size: l.PoolSize})
		if len(l.Compile) > 0 {
			out = append(out, sandbox.PoolConfig{Profile: profile(compile), Size: l.PoolSize})
		}
	}
	return out
}

func serveAction(c *cli.Context) error {
	// Signals are caught before the slow start-up, so a stop during it is
	// a clean one.
	stopCh := make(chan os.Signal, 1)
	signal.Notify(stopCh, syscall.SIGINT, syscall.SIGTERM)
	hupCh := make(chan os.Signal, 1)
	signal.Notify(hupCh, syscall.SIGHUP)
	defer signal.Stop(stopCh)
	defer signal.Stop(hupCh)

	// Socket activation's variables are consumed when the sockets are taken.
	socketActivated := activated()
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
	rc := runnerConfig(cfg)
	runner := sandbox.New(client, rc, m, log)
	if err := waitForContainerd(stopCh, runner, log); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	left, err := runner.Reap(rctx)
	cancel()
	if err != nil {
		log.WithError(err).Error("could not remove every leftover of a previous run")
	}
	if left != (sandbox.Leftovers{}) {
		log.WithFields(logrus.Fields{"containers": left.Containers, "snapshots": left.Snapshots, "boxes": left.Boxes, "shims": left.Shims}).
			Warn("removed leftovers of a previous run")
	}

	if _, err := os.Stat(rc.AgentPath); err != nil {
		return fmt.Errorf("runtimed-init, every sandbox's first process: %w (build it with make build, or set runtime.init)", err)
	}
	runner.Configure(poolConfigs(cfg), cfg.Pool.MemoryBytes)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := runner.Close(ctx); err != nil {
			log.WithError(err).Error("removing the sandboxes")
		}
	}()

	apiServer := server.New(cfg, execution.New(execution.AcquireFunc(runner.Acquire), m), runner, m, log)
	if err := apiServer.LoadRevocations(server.RevocationFile(cfg.StateDir)); err != nil {
		return err
	}
	sessions := session.NewManager(runner.Acquire, m, log, 0)
	apiServer.SetSessions(sessions)
	// After the drain (the runs in sessions end with the requests), and
	// before the runner's Close: every session's sandbox is released.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if n := sessions.Open(); n > 0 {
			log.WithField("sessions", n).Info("ending the open sessions")
		}
		if err := sessions.Close(ctx); err != nil {
			log.WithError(err).Error("ending the sessions")
		}
	}()
	// A changed image empties its pools, and may run another version.
	apiServer.ManageImages(image.NewManager(client, cfg.Namespace, cfg.Runtime.Snapshotter, func(ref string) {
		runner.ImageChanged(ref)
		apiServer.RefreshImages(c.Context)
	}))
	apiServer.RefreshImages(c.Context)
	// The images --build-missing builds are marked before the first
	// request: their languages answer image_not_ready, never missing.
	var queued []api.Image
	if c.Bool("build-missing") {
		queued = apiServer.QueueMissing(c.Context)
	}
	apiServer.LogMissingImages(c.Context)
	lns, err := listen(cfg, log)
	if err != nil {
		return err
	}
	// Requests live in drainCtx: at the shutdown deadline it is cancelled
	// with ErrShuttingDown, which stops their executions.
	drainCtx, drain := context.WithCancelCause(context.Background())
	defer drain(nil)
	var servers []*http.Server
	errCh := make(chan error, len(lns))
	for _, l := range lns {
		var h http.Handler
		switch l.kind {
		case listenUnix:
			h = apiServer
		case listenTCP:
			h = apiServer.TCPHandler()
		case listenMetrics:
			h = apiServer.MetricsHandler()
		}
		srv := server.HTTPServer(h, cfg.HTTP)
		srv.BaseContext = func(net.Listener) context.Context { return drainCtx }
		if l.kind == listenUnix {
			srv.ConnContext = server.UnixConnContext
		}
		servers = append(servers, srv)
		go func(l net.Listener) { errCh <- srv.Serve(l) }(l.Listener)
	}
	log.WithFields(logrus.Fields{"socket": lns[0].Addr().String(), "containerd": cfg.Containerd}).Info("runtimed is serving")
	notify(log, daemon.SdNotifyReady, "STATUS=serving")
	// The images missing, built while the daemon serves the languages it
	// has; stopped by the daemon's stop.
	buildCtx, cancelBuilds := context.WithCancel(context.Background())
	buildsDone := make(chan struct{})
	stopBuilds := func() {
		cancelBuilds()
		<-buildsDone
	}
	defer stopBuilds()
	if c.Bool("build-missing") {
		go func() {
			defer close(buildsDone)
			apiServer.BuildQueued(buildCtx, queued)
		}()
	} else {
		close(buildsDone)
	}

	status := time.NewTicker(5 * time.Second)
	defer status.Stop()
	for {
		select {
		case err := <-errCh:
			return err
		case <-status.C:
			running, queued := apiServer.Load()
			notify(log, fmt.Sprintf("STATUS=serving: %d running, %d queued", running, queued))
		case <-hupCh:
			if next, ok := reload(c, cfg, apiServer, log); ok {
				runner.Configure(poolConfigs(next), next.Pool.MemoryBytes)
			}
		case sig := <-stopCh:
			log.WithField("signal", sig.String()).Info("stopping: no new requests; waiting for executions under way")
			notify(log, daemon.SdNotifyStopping, "STATUS=stopping")
			stopBuilds()
			shutdown(servers, apiServer, drain, time.Duration(cfg.ShutdownTimeoutMS)*time.Millisecond, log)
			if !socketActivated {
				_ = os.Remove(cfg.Socket)
			}
			log.Info("stopped")
			return nil
		}
	}
}

// shutdown stops accepting, lets the requests under way finish until the
// deadline, then cancels the rest (their executions are stopped and they
// are answered 503) and waits for them to answer.
func shutdown(servers []*http.Server, api *server.Server, drain context.CancelCauseFunc, timeout time.Duration, log *logrus.Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func(srv *http.Server) {
			defer wg.Done()
			_ = srv.Shutdown(ctx)
		}(srv)
	}
	finished := api.Wait(timeout)
	if !finished {
		running, queued := api.Load()
		log.WithFields(logrus.Fields{"running": running, "queued": queued}).Warn("shutdown deadline: stopping the executions still under way")
	}
	drain(server.ErrShuttingDown)
	// Stopped executions clean up and answer; that takes seconds.
	if !api.Wait(time.Minute) {
		log.Error("requests still under way a minute after the shutdown deadline")
	}
	cancel()
	wg.Wait()
}

// reload re-reads the configuration on SIGHUP. Limits, tokens and
// languages take effect for the next requests; a configuration that fails
// validation is refused and the running one stays.
func reload(c *cli.Context, running config.Config, api *server.Server, log *logrus.Entry) (config.Config, bool) {
	cfg, err := loadConfig(c)
	if err != nil {
		log.WithError(err).Error("reload refused; the running configuration stays")
		return running, false
	}
	for key, changed := range map[string]bool{
		"socket": cfg.Socket != running.Socket, "listen_tcp": cfg.ListenTCP != running.ListenTCP,
		"metrics_listen": cfg.MetricsListen != running.MetricsListen, "containerd": cfg.Containerd != running.Containerd,
		"namespace": cfg.Namespace != running.Namespace, "instance": cfg.Instance != running.Instance,
		"state_dir": cfg.StateDir != running.StateDir, "runtime": cfg.Runtime != running.Runtime,
		"sandbox": cfg.Sandbox != running.Sandbox, "http": cfg.HTTP != running.HTTP,
		"requests.max_concurrent":    cfg.Requests.MaxConcurrent != running.Requests.MaxConcurrent,
		"requests.max_queued":        cfg.Requests.MaxQueued != running.Requests.MaxQueued,
		"requests.max_queue_wait_ms": cfg.Requests.MaxQueueWaitMS != running.Requests.MaxQueueWaitMS,
	} {
		if changed {
			log.Warnf("reload: %s changed; it takes effect at the next start", key)
		}
	}
	api.Reload(cfg)
	api.RefreshImages(c.Context)
	log.WithFields(logrus.Fields{"languages": len(cfg.Languages), "tokens": len(cfg.Tokens)}).Info("configuration reloaded")
	return cfg, true
}

// waitForContainerd waits until containerd answers, so that READY=1 means
// runtimed can work. A stop signal ends the wait.
func waitForContainerd(stop <-chan os.Signal, runner *sandbox.Runner, log *logrus.Entry) error {
	for warned := false; ; {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := runner.Version(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if !warned {
			log.WithError(err).Warn("waiting for containerd")
			warned = true
		}
		select {
		case sig := <-stop:
			return fmt.Errorf("stopped by %s while waiting for containerd", sig)
		case <-time.After(time.Second):
		}
	}
}

// notify sends sd_notify(3) messages when runtimed runs under systemd
// (NOTIFY_SOCKET is set), and does nothing otherwise.
func notify(log *logrus.Entry, states ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		log.WithError(err).Debug("sd_notify")
	}
}
