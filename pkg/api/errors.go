package api

import (
	"fmt"
	"strings"
)

// ErrorCode says, in a word a program can test, what was wrong.
type ErrorCode string

const (
	// Client errors (4xx): nothing was created.
	CodeInvalidJSON     ErrorCode = "invalid_json"
	CodeInvalidRequest  ErrorCode = "invalid_request"
	CodeUnknownLanguage ErrorCode = "unknown_language"
	CodeUnknownVersion  ErrorCode = "unknown_version"
	CodeInvalidFile     ErrorCode = "invalid_file"
	CodeLimitExceeded   ErrorCode = "limit_exceeded"
	CodeBodyTooLarge    ErrorCode = "body_too_large"
	// CodeUnsupportedMediaType: a Piston request whose body is not sent
	// as application/json (415).
	CodeUnsupportedMediaType ErrorCode = "unsupported_media_type"
	CodeNotFound             ErrorCode = "not_found"
	// CodeSessionNotFound: no open session of that id is the caller's
	// (404); CodeSessionExpired: the caller's session of that id ended
	// (404), its message says why.
	CodeSessionNotFound  ErrorCode = "session_not_found"
	CodeSessionExpired   ErrorCode = "session_expired"
	CodeMethodNotAllowed ErrorCode = "method_not_allowed"
	CodeUnauthorized     ErrorCode = "unauthorized"
	// CodeForbidden: image management asked by anyone but root on the
	// unix socket (403).
	CodeForbidden ErrorCode = "forbidden"
	// CodeRateLimited: the token's request rate is spent (429).
	CodeRateLimited ErrorCode = "rate_limited"
	// CodeTooManyConcurrent: the token has as many executions running as
	// it may (429).
	CodeTooManyConcurrent ErrorCode = "too_many_concurrent"

	// Platform errors (5xx): the request was fine, runtimed was not.
	CodeBusy         ErrorCode = "busy"
	CodeImageMissing ErrorCode = "image_missing"
	// CodeImageNotReady: the language's image is being built (503, with
	// Retry-After).
	CodeImageNotReady ErrorCode = "image_not_ready"
	// CodeLanguageUnavailable: a command the language starts is not in
	// its image (503, without Retry-After: the operator must fix its
	// table or its image).
	CodeLanguageUnavailable ErrorCode = "language_unavailable"
	CodeUnavailable         ErrorCode = "unavailable"
	// CodeImageFailed: an image build, import or pull failed (500, or 502
	// when a registry failed it).
	CodeImageFailed ErrorCode = "image_failed"
	CodeInternal    ErrorCode = "internal_error"
)

// ErrorBody is the body of every non-2xx answer.
type ErrorBody struct {
	Error Error `json:"error"`
}

// Error is an API error. Field names the request field at fault, when
// there is one.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Field   string    `json:"field,omitempty"`
	// HTTPStatus is the status the error was (or is to be) answered with.
	HTTPStatus int `json:"-"`
	// RequestID is the answer's X-Request-Id, where the client has it:
	// runtimed's log lines about the request carry it.
	RequestID string `json:"-"`
	// RetryAfter is the answer's Retry-After, in seconds, where it has
	// one (a rate limit, a busy daemon).
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Code, e.Message)
	if e.HTTPStatus != 0 {
		msg = fmt.Sprintf("%s (%d): %s", e.Code, e.HTTPStatus, e.Message)
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf("; retry after %d s", e.RetryAfter)
	}
	if e.RequestID != "" && !strings.Contains(e.Message, e.RequestID) {
		msg += " [request id " + e.RequestID + "]"
	}
	return msg
}
