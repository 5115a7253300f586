package image

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// Download is a file a recipe takes from outside Debian's archive (a
// release published elsewhere, such as an npm package or Go's toolchain
// module): fetched by the builder on the host, checked against its
// pinned SHA-256 before anything of it is used, and unpacked into the
// image.
type Download struct {
	// URL is an https URL of a .tar.gz, .tgz or .zip archive.
	URL string `toml:"url"`
	// SHA256 is the archive's digest, in hex.
	SHA256 string `toml:"sha256"`
	// Dest is the absolute directory of the image it is unpacked into.
	Dest string `toml:"dest"`
	// Strip drops that many leading path elements of each entry, as
	// tar's --strip-components does.
	Strip int `toml:"strip"`
}

// downloadClient fetches the downloads (a test's own in tests).
var downloadClient = http.DefaultClient

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// maxDownload bounds a download's size, and maxUnpacked what it unpacks to.
const (
	maxDownload = 1 << 30
	maxUnpacked = 4 << 30
)

func (d Download) check() error {
	switch {
	case !strings.HasPrefix(d.URL, "https://"):
		return fmt.Errorf("download %q: the URL must be https", d.URL)
	case !strings.HasSuffix(d.URL, ".tar.gz") && !strings.HasSuffix(d.URL, ".tgz") && !strings.HasSuffix(d.URL, ".zip"):
		return fmt.Errorf("download %q: a .tar.gz, .tgz or .zip archive is unpacked, nothing else", d.URL)
	case !sha256Hex.MatchString(d.SHA256):
		return fmt.Errorf("download %q: sha256 must be the archive's SHA-256 in lower-case hex", d.URL)
	case !filepath.IsAbs(d.Dest) || strings.Contains(d.Dest, ".."):
		return fmt.Errorf("download %q: dest %q must be absolute and without \"..\"", d.URL, d.Dest)
	case d.Strip < 0:
		return fmt.Errorf("download %q: strip must not be negative", d.URL)
	}
	return nil
}

// fetch downloads d into a temporary file in dir and checks its digest.
// The caller removes the file.
func (d Download) fetch(ctx context.Context, dir string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL, nil)
	if err != nil {
		return "", err
	}
	resp, err := downloadClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", d.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s", d.URL, resp.Status)
	}
	f, err := os.CreateTemp(dir, ".download-")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, maxDownload+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > maxDownload {
		err = fmt.Errorf("larger than %d bytes", int64(maxDownload))
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != d.SHA256 {
			err = fmt.Errorf("its SHA-256 is %s, the recipe pins %s", got, d.SHA256)
		}
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("download %s: %w", d.URL, err)
	}
	return f.Name(), nil
}

// provide fetches d and unpacks it under root (the image being built).
// Entries are written through an os.Root at the destination: none
// reaches outside it, by "..", an absolute name or a link.
func (d Download) provide(ctx context.Context, root, tmpDir string) error {
	file, err := d.fetch(ctx, tmpDir)
	if err != nil {
		return err
	}
	defer os.Remove(file)
	dest := filepath.Join(root, d.Dest)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	r, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer r.Close()
	u := unpacker{root: r, strip: d.Strip, budget: maxUnpacked}
	if strings.HasSuffix(d.URL, ".zip") {
		err = u.zip(file)
	} else {
		err = u.tarGz(file)
	}
	if err != nil {
		return fmt.Errorf("unpack %s: %w", d.URL, err)
	}
	return nil
}

type unpacker struct {
	root   *os.Root
	strip  int
	budget int64
}

// name is an entry's path under the destination, "" if stripped away.
func (u *unpacker) name(entry string) (string, error) {
	clean := path.Clean("/" + strings.TrimPrefix(entry, "./"))
	if clean != "/"+strings.TrimSuffix(strings.TrimPrefix(entry, "./"), "/") {
		return "", fmt.Errorf("entry %q is not a plain relative path", entry)
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	if len(parts) <= u.strip {
		return "", nil
	}
	return path.Join(parts[u.strip:]...), nil
}

func (u *unpacker) file(name string, mode fs.FileMode, r io.Reader, size int64) error {
	if u.budget -= size; u.budget < 0 {
		return errors.New("unpacks to more than the limit")
	}
	if err := u.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()&0o755)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("entry %s: %d bytes, its header says %d", name, n, size)
	}
	return err
}

func (u *unpacker) tarGz(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name, err := u.name(h.Name)
		if err != nil || name == "" {
			if err != nil {
				return err
			}
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = u.root.MkdirAll(name, 0o755)
		case tar.TypeReg:
			err = u.file(name, h.FileInfo().Mode(), tr, h.Size)
		case tar.TypeSymlink:
			if err = u.root.MkdirAll(path.Dir(name), 0o755); err == nil {
				err = u.root.Symlink(h.Linkname, name)
			}
		case tar.TypeXGlobalHeader:
		default:
			err = fmt.Errorf("entry %s: type %q is not unpacked", h.Name, h.Typeflag)
		}
		if err != nil {
			return err
		}
	}
}

func (u *unpacker) zip(file string) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, zf := range zr.File {
		name, err := u.name(zf.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		mode := zf.Mode()
		switch {
		case mode.IsDir():
			err = u.root.MkdirAll(name, 0o755)
		case mode.IsRegular():
			var rc io.ReadCloser
			if rc, err = zf.Open(); err == nil {
				err = u.file(name, mode, rc, int64(zf.UncompressedSize64))
				rc.Close()
			}
		default:
			err = fmt.Errorf("entry %s: mode %v is not unpacked", zf.Name, mode)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
