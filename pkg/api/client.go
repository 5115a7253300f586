package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
)

// DefaultSocket is where runtimed listens unless configured otherwise.
const DefaultSocket = "/run/runtimed/runtimed.sock"

// Client talks to runtimed over its unix socket or over HTTP(S).
type Client struct {
	http  *http.Client
	base  string
	token string
}

// NewClient returns a client for addr: a unix socket path (or
// unix://PATH), an http:// or https:// URL, or tcp://HOST:PORT (plain
// HTTP). token, if set, is sent as a bearer token. A connection that
// fails is a *DialError that says what to do.
func NewClient(addr, token string) *Client {
	if rest, ok := strings.CutPrefix(addr, "tcp://"); ok {
		addr = "http://" + rest
	}
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		base := strings.TrimSuffix(addr, "/")
		def, ok := http.DefaultTransport.(*http.Transport)
		if !ok {
			def = &http.Transport{Proxy: http.ProxyFromEnvironment}
		}
		tr := def.Clone()
		inner := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
			conn, err := inner(ctx, network, a)
			if err != nil {
				return nil, &DialError{Addr: base, Err: err}
			}
			return conn, nil
		}
		return &Client{http: &http.Client{Transport: tr}, base: base, token: token}
	}
	path := strings.TrimPrefix(addr, "unix://")
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", path)
			if err != nil {
				return nil, &DialError{Addr: path, Unix: true, Err: err}
			}
			return conn, nil
		},
	}
	return &Client{http: &http.Client{Transport: tr}, base: "http://runtimed", token: token}
}

// DialError is a connection to runtimed that failed; its message says
// why in words and what to do.
type DialError struct {
	Addr string // the socket's path, or the URL
	Unix bool
	Err  error
}

func (e *DialError) Unwrap() error { return e.Err }

func (e *DialError) Error() string {
	switch {
	case e.Unix && errors.Is(e.Err, syscall.ENOENT):
		return fmt.Sprintf("runtimed is not running: there is no socket at %s (start it: systemctl start runtimed, or make run in its source tree; another socket: --socket or RUNTIMED_SOCKET)", e.Addr)
	case e.Unix && errors.Is(e.Err, syscall.ECONNREFUSED):
		return fmt.Sprintf("runtimed is not running: nothing listens on %s (start it: systemctl start runtimed)", e.Addr)
	case e.Unix && (errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM)):
		return fmt.Sprintf("permission denied on %s: its users are root and the group runtimed (sudo usermod -aG runtimed $USER, then log in again), or use sudo", e.Addr)
	case e.Unix:
		return fmt.Sprintf("cannot reach runtimed at %s: %v", e.Addr, e.Err)
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens at %s: is runtimed's listen_tcp (or the proxy in front of it) at that address?", e.Addr)
	}
	return fmt.Sprintf("cannot reach runtimed at %s: %v", e.Addr, e.Err)
}

// transportError is what a request that did not get an answer returns:
// a *DialError as it is (not under the request's URL), else err.
func transportError(err error) error {
	var de *DialError
	if errors.As(err, &de) {
		return de
	}
	return err
}

// NewHTTPClient returns a client for the base URL of runtimed's TCP
// listener (or a proxy in front of it) that sends its requests with hc.
func NewHTTPClient(base, token string, hc *http.Client) *Client {
	return &Client{http: hc, base: strings.TrimSuffix(base, "/"), token: token}
}

// Run runs code. A non-nil error is either an *Error from runtimed or a
// transport failure; the program's own failure is in the response.
func (c *Client) Run(ctx context.Context, req *RunRequest) (*RunResponse, error) {
	var out RunResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/run", req, &out)
}

// Runtimes lists the languages runtimed runs.
func (c *Client) Runtimes(ctx context.Context) (*RuntimesResponse, error) {
	var out RuntimesResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/runtimes", nil, &out)
}

// Pools describes the warm pools.
func (c *Client) Pools(ctx context.Context) (*Pools, error) {
	var out Pools
	return &out, c.do(ctx, http.MethodGet, "/v1/pools", nil, &out)
}

// Health asks whether runtimed is up and containerd answers it.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var out Health
	return &out, c.do(ctx, http.MethodGet, "/healthz", nil, &out)
}

// Ready asks whether runtimed can take work now. A not-ready answer is
// an *Error with HTTPStatus 503; the checks are in the returned value
// either way.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	var out Readiness
	err := c.do(ctx, http.MethodGet, "/readyz", nil, &out)
	var aerr *Error
	if errors.As(err, &aerr) && aerr.HTTPStatus == http.StatusServiceUnavailable && aerr.Message != "" {
		if json.Unmarshal([]byte(aerr.Message), &out) == nil && len(out.Checks) > 0 {
			aerr.Code = CodeUnavailable
		}
	}
	return &out, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	if in == nil {
		return c.send(ctx, method, path, "", nil, out)
	}
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.send(ctx, method, path, "application/json", bytes.NewReader(data), out)
}

// send sends body (of contentType) and decodes the answer into out.
func (c *Client) send(ctx context.Context, method, path, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return errorAnswerOf(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s answer: %w", path, err)
	}
	return nil
}

// open sends a request without a body and returns the answer, whose body
// the caller closes, or the error it says.
func (c *Client) open(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, err
		}
		return nil, errorAnswerOf(resp, data)
	}
	return resp, nil
}

// errorAnswerOf is errorAnswer with the answer's request id.
func errorAnswerOf(resp *http.Response, data []byte) *Error {
	e := errorAnswer(resp.StatusCode, data)
	e.RequestID = resp.Header.Get("X-Request-Id")
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
		e.RetryAfter = n
	}
	return e
}

// errorAnswer is the *Error a non-2xx answer with this status and body
// says.
func errorAnswer(status int, data []byte) *Error {
	var eb ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		eb.Error.HTTPStatus = status
		return &eb.Error
	}
	return &Error{Code: CodeInternal, HTTPStatus: status, Message: strings.TrimSpace(string(data))}
}
