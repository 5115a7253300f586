//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

// unixHTTP is a plain HTTP client on runtimed's socket, for requests the
// api.Client would not send.
func unixHTTP() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", env.socket)
		},
	}}
}

// postRaw posts body to /v1/run as it is.
func postRaw(t *testing.T, body string) (int, []byte) {
	t.Helper()
	resp, err := unixHTTP().Post("http://runtimed/v1/run", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

func decodeErrorBody(body []byte, e *api.Error) error {
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		return err
	}
	*e = eb.Error
	return nil
}
