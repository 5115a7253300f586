package image

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name, body, link string
	dir              bool
}

func tarGz(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.dir:
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		case e.link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipOf(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// serve serves each archive at its path over TLS, and makes the builder
// trust the server for the test.
func serve(t *testing.T, files map[string][]byte) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	old := downloadClient
	downloadClient = srv.Client()
	t.Cleanup(func() { downloadClient = old })
	return srv.URL
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A download is checked against its pinned digest before anything of it
// is unpacked; it unpacks under its destination, stripped, and nothing of
// it lands outside, whatever its entries are named.
func TestDownload(t *testing.T) {
	good := tarGz(t, []entry{{name: "package/", dir: true}, {name: "package/bin/tsc", body: "#!/bin/sh\n"}, {name: "package/lib/x.js", body: "x"}, {name: "package/lib/link", link: "x.js"}})
	goodZip := zipOf(t, []entry{{name: "golang.org/toolchain@v1/bin/go", body: "go"}, {name: "golang.org/toolchain@v1/VERSION", body: "go1"}})
	climbs := tarGz(t, []entry{{name: "package/../../escaped", body: "x"}})
	absolute := tarGz(t, []entry{{name: "/etc/escaped", body: "x"}})
	throughLink := tarGz(t, []entry{{name: "package/out", link: "/"}, {name: "package/out/escaped", body: "x"}})
	zipClimbs := zipOf(t, []entry{{name: "a/../../escaped", body: "x"}})
	url := serve(t, map[string][]byte{"/good.tgz": good, "/good.zip": goodZip, "/climbs.tgz": climbs, "/absolute.tgz": absolute,
		"/link.tgz": throughLink, "/climbs.zip": zipClimbs})

	root := t.TempDir()
	d := Download{URL: url + "/good.tgz", SHA256: sum(good), Dest: "/usr/local/lib/node_modules/typescript", Strip: 1}
	if err := d.check(); err != nil {
		t.Fatal(err)
	}
	if err := d.provide(context.Background(), root, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, d.Dest, "bin/tsc")); err != nil || string(b) != "#!/bin/sh\n" {
		t.Fatalf("bin/tsc: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(root, d.Dest, "lib/link")); err != nil || l != "x.js" {
		t.Fatalf("lib/link: %q %v", l, err)
	}
	z := Download{URL: url + "/good.zip", SHA256: sum(goodZip), Dest: "/usr/local/go", Strip: 2}
	if err := z.provide(context.Background(), root, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "usr/local/go/bin/go")); err != nil || string(b) != "go" {
		t.Fatalf("zip bin/go: %q %v", b, err)
	}

	for name, tc := range map[string]struct {
		d    Download
		want string
	}{
		"wrong digest":   {Download{URL: url + "/good.tgz", SHA256: strings.Repeat("0", 64), Dest: "/x"}, "the recipe pins"},
		"not there":      {Download{URL: url + "/none.tgz", SHA256: sum(good), Dest: "/x"}, "404"},
		"climbs":         {Download{URL: url + "/climbs.tgz", SHA256: sum(climbs), Dest: "/x"}, "not a plain relative path"},
		"absolute":       {Download{URL: url + "/absolute.tgz", SHA256: sum(absolute), Dest: "/x"}, "not a plain relative path"},
		"through a link": {Download{URL: url + "/link.tgz", SHA256: sum(throughLink), Dest: "/x"}, "escapes"},
		"zip climbs":     {Download{URL: url + "/climbs.zip", SHA256: sum(zipClimbs), Dest: "/x"}, "not a plain relative path"},
	} {
		t.Run(name, func(t *testing.T) {
			sandbox := t.TempDir()
			root := filepath.Join(sandbox, "root")
			err := tc.d.provide(context.Background(), root, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(sandbox, "escaped")); err == nil {
				t.Fatal("an entry was written outside the destination")
			}
			if _, err := os.Stat("/escaped"); err == nil {
				t.Fatal("an entry was written at /escaped")
			}
		})
	}

	for _, bad := range []Download{
		{URL: "http://example.org/a.tgz", SHA256: sum(good), Dest: "/x"},
		{URL: "https://example.org/a.deb", SHA256: sum(good), Dest: "/x"},
		{URL: "https://example.org/a.tgz", SHA256: "abc", Dest: "/x"},
		{URL: "https://example.org/a.tgz", SHA256: sum(good), Dest: "x"},
		{URL: "https://example.org/a.tgz", SHA256: sum(good), Dest: "/x/../.."},
		{URL: "https://example.org/a.tgz", SHA256: sum(good), Dest: "/x", Strip: -1},
	} {
		if err := bad.check(); err == nil {
			t.Errorf("%+v passes the check", bad)
		}
	}
}
