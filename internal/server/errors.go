package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/containerd/errdefs"

	"github.com/runtimed/runtimed/pkg/api"
)

// The server's one error vocabulary. Every answer that is not a 2xx is
// an *api.Error; its HTTP status follows from its code (statusOf), and
// an error from below the server — the executor, the image manager,
// containerd — becomes one by its errdefs category (categorize). Nothing
// else in this package picks a status for an error.

// statusOf is the HTTP status of each error code. image_failed is 500
// here; a registry's failure answers 502 (imageError).
var statusOf = map[api.ErrorCode]int{
	api.CodeInvalidJSON:          http.StatusBadRequest,
	api.CodeInvalidRequest:       http.StatusBadRequest,
	api.CodeUnknownLanguage:      http.StatusBadRequest,
	api.CodeUnknownVersion:       http.StatusBadRequest,
	api.CodeInvalidFile:          http.StatusBadRequest,
	api.CodeLimitExceeded:        http.StatusBadRequest,
	api.CodeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	api.CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	api.CodeNotFound:             http.StatusNotFound,
	api.CodeSessionNotFound:      http.StatusNotFound,
	api.CodeSessionExpired:       http.StatusNotFound,
	api.CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	api.CodeUnauthorized:         http.StatusUnauthorized,
	api.CodeForbidden:            http.StatusForbidden,
	api.CodeRateLimited:          http.StatusTooManyRequests,
	api.CodeTooManyConcurrent:    http.StatusTooManyRequests,
	api.CodeBusy:                 http.StatusServiceUnavailable,
	api.CodeImageMissing:         http.StatusServiceUnavailable,
	api.CodeImageNotReady:        http.StatusServiceUnavailable,
	api.CodeLanguageUnavailable:  http.StatusServiceUnavailable,
	api.CodeUnavailable:          http.StatusServiceUnavailable,
	api.CodeImageFailed:          http.StatusInternalServerError,
	api.CodeInternal:             http.StatusInternalServerError,
}

// newError is an error answer with its code's status.
func newError(code api.ErrorCode, format string, args ...any) *api.Error {
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &api.Error{Code: code, Message: msg, HTTPStatus: status}
}

// categories are the errdefs categories an error from below the server
// may carry, in the order they are tested, and the code each is answered
// with. An error in none of them is a platform failure (internal_error).
var categories = []struct {
	is   func(error) bool
	code api.ErrorCode
}{
	{errdefs.IsInvalidArgument, api.CodeInvalidRequest},
	{errdefs.IsNotFound, api.CodeNotFound},
	{errdefs.IsPermissionDenied, api.CodeForbidden},
	{errdefs.IsUnauthorized, api.CodeUnauthorized},
	// The host lacks what a valid request needs: a language's image.
	{errdefs.IsFailedPrecondition, api.CodeImageMissing},
	{errdefs.IsResourceExhausted, api.CodeBusy},
	{errdefs.IsUnavailable, api.CodeUnavailable},
	{errdefs.IsCanceled, api.CodeUnavailable},
}

// categorize is the answer to err by its category: an *api.Error as it
// is, an errdefs category as its code (with err's text as the message),
// or nil if err has no category — a platform failure, which the caller
// answers with internal (its text stays in the log).
func categorize(err error) *api.Error {
	var aerr *api.Error
	if errors.As(err, &aerr) {
		return aerr
	}
	for _, c := range categories {
		if c.is(err) {
			return newError(c.code, "%s", err)
		}
	}
	return nil
}
