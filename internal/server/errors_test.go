package server

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/runtimed/runtimed/internal/image"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// Every error code pkg/api declares has its status here: a code added
// there without one would be answered as a 500.
func TestEveryCodeHasAStatus(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "../../pkg/api/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok || !strings.HasPrefix(vs.Names[0].Name, "Code") {
			return true
		}
		n++
		code := api.ErrorCode(strings.Trim(lit.Value, `"`))
		if _, ok := statusOf[code]; !ok {
			t.Errorf("%s (%s) has no HTTP status in statusOf", vs.Names[0].Name, code)
		}
		return true
	})
	if n < 10 || n != len(statusOf) {
		t.Errorf("pkg/api declares %d codes, statusOf has %d", n, len(statusOf))
	}
}

func TestCategorize(t *testing.T) {
	own := newError(api.CodeBusy, "full")
	for _, tc := range []struct {
		name string
		err  error
		code api.ErrorCode // "" for no category: a platform failure
	}{
		{"an api error as it is", fmt.Errorf("admission: %w", own), api.CodeBusy},
		{"not found", fmt.Errorf("image x: %w", errdefs.ErrNotFound), api.CodeNotFound},
		{"invalid argument", fmt.Errorf("reference: %w", errdefs.ErrInvalidArgument), api.CodeInvalidRequest},
		{"the image is missing", fmt.Errorf("image docker.io/x: %w", sandbox.ErrImageMissing), api.CodeImageMissing},
		{"containerd unavailable", fmt.Errorf("dial: %w", errdefs.ErrUnavailable), api.CodeUnavailable},
		{"canceled", fmt.Errorf("pull: %w", context.Canceled), api.CodeUnavailable},
		{"exhausted", errdefs.ErrResourceExhausted, api.CodeBusy},
		{"no category", errors.New("shim exited"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := categorize(tc.err)
			if tc.code == "" {
				if e != nil {
					t.Fatalf("got %v, want no category", e)
				}
				return
			}
			if e == nil || e.Code != tc.code {
				t.Fatalf("got %v, want %s", e, tc.code)
			}
			if e.HTTPStatus != statusOf[tc.code] || e.HTTPStatus == 0 {
				t.Errorf("status %d, want %d", e.HTTPStatus, statusOf[tc.code])
			}
		})
	}
	if own.HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("busy is %d", own.HTTPStatus)
	}
}

// An image change's failure: the request's fault before the registry's,
// the registry's before runtimed's.
func TestImageError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		code   api.ErrorCode
		status int
	}{
		{"the registry has no such image", &image.RegistryError{Err: fmt.Errorf("resolve: %w", errdefs.ErrNotFound)}, api.CodeNotFound, http.StatusNotFound},
		{"a bad reference", fmt.Errorf("reference: %w", errdefs.ErrInvalidArgument), api.CodeInvalidRequest, http.StatusBadRequest},
		{"the registry failed", &image.RegistryError{Err: errors.New("connection reset")}, api.CodeImageFailed, http.StatusBadGateway},
		{"stopped", fmt.Errorf("pull: %w", context.Canceled), api.CodeUnavailable, http.StatusServiceUnavailable},
		{"runtimed's own", errors.New("write layout"), api.CodeImageFailed, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := imageError(tc.err)
			if e.Code != tc.code || e.HTTPStatus != tc.status {
				t.Fatalf("%s (%d), want %s (%d)", e.Code, e.HTTPStatus, tc.code, tc.status)
			}
		})
	}
}
