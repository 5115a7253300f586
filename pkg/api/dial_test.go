package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestDialErrorsSayWhatToDo: a daemon that is not there is said in
// words, with what to do, not as a Go error under the request's URL.
func TestDialErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	// A socket nobody listens on any more: refused.
	dead := filepath.Join(dir, "dead.sock")
	l, err := net.Listen("unix", dead)
	if err != nil {
		t.Fatal(err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		t.Fatalf("%T", l)
	}
	ul.SetUnlinkOnClose(false)
	l.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	for _, tc := range []struct{ addr, want string }{
		{filepath.Join(dir, "none.sock"), "runtimed is not running: there is no socket at"},
		{"unix://" + filepath.Join(dir, "none.sock"), "there is no socket at " + filepath.Join(dir, "none.sock")},
		{dead, "nothing listens on " + dead},
		{"tcp://" + freeAddr, "nothing listens at http://" + freeAddr},
		{"http://" + freeAddr, "listen_tcp"},
	} {
		_, err := NewClient(tc.addr, "").Runtimes(context.Background())
		var de *DialError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "http://runtimed/") {
			t.Errorf("%s: %v, want %q", tc.addr, err, tc.want)
		}
	}
}

// TestErrorsCarryTheRequestID: an error answer names its request id, as
// runtimed's log does.
func TestErrorsCarryTheRequestID(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "abc123")
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"busy","message":"all sandboxes are in use"}}`))
	}))
	defer srv.Close()
	_, err := NewClient("tcp://"+strings.TrimPrefix(srv.URL, "http://"), "").Runtimes(context.Background())
	var aerr *Error
	if !errors.As(err, &aerr) || aerr.RequestID != "abc123" || !strings.Contains(err.Error(), "request id abc123") || aerr.Code != CodeBusy ||
		aerr.RetryAfter != 10 || !strings.Contains(err.Error(), "retry after 10 s") {
		t.Fatalf("%v", err)
	}
}
