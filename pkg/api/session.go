package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SessionRequest is the body of POST /v1/sessions: a sandbox that lives
// across requests. Every field but Language is optional.
type SessionRequest struct {
	Language string `json:"language,omitempty"`
	Version  string `json:"version,omitempty"`
	// Image, instead of Language, names the session's language by its
	// image reference (as GET /v1/runtimes lists it).
	Image string `json:"image,omitempty"`
	// Limits: memory_bytes, cpu and pids bound the whole session, every
	// run together; the others are the defaults of its runs.
	Limits Limits `json:"limits,omitempty"`
	// BoxBytes is the size of the session's /box, its disk.
	BoxBytes int64 `json:"box_bytes,omitempty"`
	// IdleTimeoutS ends the session after that long without a request.
	IdleTimeoutS int64 `json:"idle_timeout_s,omitempty"`
	// MaxLifetimeS ends the session that long after its creation.
	MaxLifetimeS int64 `json:"max_lifetime_s,omitempty"`
	// Mode is "" (each run a program) or SessionModeRepl.
	Mode string `json:"mode,omitempty"`
}

// SessionModeRepl: a Python or JavaScript session whose runs are cells of
// one interpreter that lives between them, names defined by one run
// there in the next; a run's answer has the last expression's value as
// Result.
const SessionModeRepl = "repl"

// Session describes an open session.
type Session struct {
	ID           string    `json:"id"`
	Language     string    `json:"language"`
	Version      string    `json:"version"`
	Limits       Limits    `json:"limits"`
	BoxBytes     int64     `json:"box_bytes"`
	IdleTimeoutS int64     `json:"idle_timeout_s"`
	MaxLifetimeS int64     `json:"max_lifetime_s"`
	Mode         string    `json:"mode,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	LastUsedAt   time.Time `json:"last_used_at"`
	// ExpiresAt is when the session ends unless it is used before: its
	// idle timeout or its lifetime, whichever comes first.
	ExpiresAt time.Time `json:"expires_at"`
	// Runs is how many runs the session has had.
	Runs int `json:"runs"`
	// Busy: a request uses the session now.
	Busy bool `json:"busy"`
}

// Sessions is the body of GET /v1/sessions: the caller's own.
type Sessions struct {
	Sessions []Session `json:"sessions"`
}

// SessionRunRequest is the body of POST /v1/sessions/{id}/run. Files
// are written into the session's /box (the first is the entry file);
// Code, instead, is the entry file's content (named as the language's
// entry file is). What the box holds besides stays.
type SessionRunRequest struct {
	Files []File   `json:"files,omitempty"`
	Code  string   `json:"code,omitempty"`
	Stdin string   `json:"stdin,omitempty"`
	Args  []string `json:"args,omitempty"`
	// Limits: wall_time_ms, cpu_time_ms and output_bytes for this run;
	// memory, CPU and pids are the session's.
	Limits     Limits `json:"limits,omitempty"`
	DeadlineMS int64  `json:"deadline_ms,omitempty"`
}

// BoxEntry is a file or directory of a session's box, as GET on a
// directory lists it.
type BoxEntry struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Mode is the file's type and permissions, as ls shows them
	// (-rw-r--r--, drwxr-xr-x, Lrwxrwxrwx).
	Mode string `json:"mode"`
	Dir  bool   `json:"dir,omitempty"`
}

// BoxListing is the answer of GET on a directory of a session's box.
type BoxListing struct {
	Path    string     `json:"path"`
	Entries []BoxEntry `json:"entries"`
}

// CreateSession opens a session.
func (c *Client) CreateSession(ctx context.Context, req *SessionRequest) (*Session, error) {
	var out Session
	return &out, c.do(ctx, http.MethodPost, "/v1/sessions", req, &out)
}

// Sessions lists the caller's sessions.
func (c *Client) Sessions(ctx context.Context) (*Sessions, error) {
	var out Sessions
	return &out, c.do(ctx, http.MethodGet, "/v1/sessions", nil, &out)
}

// Session describes the session id.
func (c *Client) Session(ctx context.Context, id string) (*Session, error) {
	var out Session
	return &out, c.do(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &out)
}

// DeleteSession ends the session id.
func (c *Client) DeleteSession(ctx context.Context, id string) error {
	return c.send(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), "", nil, nil)
}

// SessionRun runs a program in the session id.
func (c *Client) SessionRun(ctx context.Context, id string, req *SessionRunRequest) (*RunResponse, error) {
	var out RunResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/run", req, &out)
}

// sessionFile is the path of a file of a session's box in the API.
func sessionFile(id, name string) string {
	parts := strings.Split(strings.Trim(name, "/"), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/v1/sessions/" + url.PathEscape(id) + "/files/" + strings.Join(parts, "/")
}

// PutSessionFile writes body to name in the session's box.
func (c *Client) PutSessionFile(ctx context.Context, id, name string, body io.Reader) error {
	return c.send(ctx, http.MethodPut, sessionFile(id, name), "application/octet-stream", body, nil)
}

// SessionFile reads name, a file, from the session's box. The caller
// closes the body.
func (c *Client) SessionFile(ctx context.Context, id, name string) (io.ReadCloser, error) {
	body, list, err := c.SessionPath(ctx, id, name)
	if err == nil && list != nil {
		err = fmt.Errorf("%s is a directory", name)
	}
	return body, err
}

// SessionPath reads name from the session's box: a file's content (the
// caller closes it), or a directory's listing.
func (c *Client) SessionPath(ctx context.Context, id, name string) (io.ReadCloser, *BoxListing, error) {
	resp, err := c.open(ctx, http.MethodGet, sessionFile(id, name))
	if err != nil {
		return nil, nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
		defer resp.Body.Close()
		var out BoxListing
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, nil, fmt.Errorf("decode the listing of %s: %w", name, err)
		}
		return nil, &out, nil
	}
	return resp.Body, nil, nil
}

// ListSessionFiles lists the directory name of the session's box ("" is
// /box itself).
func (c *Client) ListSessionFiles(ctx context.Context, id, name string) (*BoxListing, error) {
	var out BoxListing
	p := sessionFile(id, name)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return &out, c.do(ctx, http.MethodGet, p, nil, &out)
}

// DeleteSessionFile removes name, a file or a directory, from the
// session's box.
func (c *Client) DeleteSessionFile(ctx context.Context, id, name string) error {
	return c.send(ctx, http.MethodDelete, sessionFile(id, name), "", nil, nil)
}
