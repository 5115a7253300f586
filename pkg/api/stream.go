package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// RunStream runs code as Run does, and calls fn with each event of the
// execution as runtimed sends it (POST /v1/run with Accept:
// application/x-ndjson), the done event last. It returns the done
// event's response, the same answer Run returns.
//
// A non-nil error is an *Error — a refusal before anything ran (with its
// HTTPStatus), or the error event of a platform failure afterwards (with
// HTTPStatus 0: the answer had begun) — a transport failure, a stream cut
// short, or fn's own error, which stops the stream and the execution.
// fn may be nil. A runtimed that does not stream answers the whole
// response at once: fn then hears nothing but the done event.
func (c *Client) RunStream(ctx context.Context, req *RunRequest, fn func(Event) error) (*RunResponse, error) {
	return c.stream(ctx, "/v1/run", req, fn)
}

// SessionRunStream runs req in the session id as SessionRun does,
// calling fn with each event as RunStream does.
func (c *Client) SessionRunStream(ctx context.Context, id string, req *SessionRunRequest, fn func(Event) error) (*RunResponse, error) {
	return c.stream(ctx, "/v1/sessions/"+url.PathEscape(id)+"/run", req, fn)
}

// stream posts req to path and reads the events of its answer.
func (c *Client) stream(ctx context.Context, path string, req any, fn func(Event) error) (*RunResponse, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// Returning early (fn's error) closes the body, which ends the
	// request: runtimed stops the execution.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", ContentTypeNDJSON+", application/json;q=0.5")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(hreq)
	if err != nil {
		return nil, transportError(err)
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode/100 != 2 || mt != ContentTypeNDJSON {
		return runAnswer(resp, path, fn)
	}

	dec := json.NewDecoder(resp.Body)
	for {
		var ev Event
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read %s's stream: %w", path, err)
		}
		if fn != nil {
			if err := fn(ev); err != nil {
				return nil, err
			}
		}
		switch ev.Event {
		case EventDone:
			if ev.Response == nil {
				return nil, fmt.Errorf("read %s's stream: a done event without a response", path)
			}
			return ev.Response, nil
		case EventError:
			if ev.Error == nil {
				return nil, fmt.Errorf("read %s's stream: an error event without an error", path)
			}
			return nil, ev.Error
		case EventStage, EventStdout, EventStderr, EventResult:
		}
	}
}

// runAnswer reads an answer that is not a stream: an error, or the whole
// response (told to fn as the done event).
func runAnswer(resp *http.Response, path string, fn func(Event) error) (*RunResponse, error) {
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorAnswerOf(resp, data)
	}
	var out RunResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("decode %s answer: %w", path, err)
	}
	if fn != nil {
		if err := fn(Event{Event: EventDone, Response: &out}); err != nil {
			return nil, err
		}
	}
	return &out, nil
}
