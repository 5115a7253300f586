package image

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
)

// The layer added to images made elsewhere holds the mount points a
// sandbox's read-only root needs, and nothing else.
func TestMountPointLayer(t *testing.T) {
	data, err := mountPointLayer()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]byte{"box/": tar.TypeDir, ".runtimed/": tar.TypeDir, ".runtimed/init": tar.TypeReg}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		typ, ok := want[h.Name]
		if !ok || h.Typeflag != typ || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || h.Size != 0 {
			t.Errorf("entry %+v", h)
		}
		delete(want, h.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing entries %v", want)
	}
	again, _ := mountPointLayer()
	if !bytes.Equal(data, again) {
		t.Error("the layer differs from one call to the next: its digest would too")
	}
}
