package image

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeLayout writes recipe's image as an OCI image layout in dir: the
// layers of the layout in parentDir (none if empty), hard-linked, then
// the one writeLayer writes. A layer is an uncompressed tar: the cache is
// local, and an uncompressed layer unpacks faster (its digest is its
// diff ID).
func writeLayout(ctx context.Context, dir string, recipe Recipe, version, parentDir string, writeLayer func(io.Writer) error) error {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	var layers []ocispec.Descriptor
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if parentDir != "" {
		manifest, config, err := readManifest(parentDir)
		if err != nil {
			return err
		}
		for _, l := range manifest.Layers {
			if err := linkBlob(blobPath(parentDir, l.Digest), filepath.Join(blobs, l.Digest.Encoded())); err != nil {
				return err
			}
		}
		layers, env = manifest.Layers, config.Config.Env
	}

	tmp, err := os.CreateTemp(dir, ".layer-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, h)}
	if err := writeLayer(cw); err != nil {
		tmp.Close()
		return fmt.Errorf("tar the layer: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	layer := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digestOf(h),
		Size:      cw.n,
	}
	if err := os.Rename(tmp.Name(), filepath.Join(blobs, layer.Digest.Encoded())); err != nil {
		return err
	}
	layers = append(slices.Clone(layers), layer)
	diffIDs := make([]digest.Digest, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest
	}

	created := time.Now().UTC()
	config := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env:    mergeEnv(env, recipe.Env),
			Labels: map[string]string{labelRecipe: recipe.Digest},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	if version != "" {
		config.Config.Labels[LabelVersion] = version
	}
	for _, name := range recipe.Layers() {
		config.History = append(config.History, ocispec.History{Created: &created, CreatedBy: "runtimed image build: " + name})
	}
	configDesc, err := writeJSONBlob(blobs, ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return err
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    layers,
	}
	manifestDesc, err := writeJSONBlob(blobs, ocispec.MediaTypeImageManifest, manifest)
	if err != nil {
		return err
	}
	manifestDesc.Annotations = map[string]string{labelRecipe: recipe.Digest}
	if recipe.Reference != "" {
		manifestDesc.Annotations[ocispec.AnnotationRefName] = recipe.Reference
	}
	manifestDesc.Platform = &config.Platform
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	}
	if err := writeJSON(filepath.Join(dir, ocispec.ImageLayoutFile), ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "index.json"), index)
}

// mergeEnv is base's environment with over's variables set over it.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		name, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(e string) bool { return strings.HasPrefix(e, name+"=") })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

// linkBlob puts the blob at src at dst too: a hard link (the cache holds
// a layer once however many images have it), or a copy where src is on
// another file system.
func linkBlob(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil || errors.Is(err, os.ErrExist) {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readManifest reads the manifest and config of a one-image layout.
func readManifest(dir string) (ocispec.Manifest, ocispec.Image, error) {
	var manifest ocispec.Manifest
	var config ocispec.Image
	mdesc, err := readLayout(dir)
	if err != nil {
		return manifest, config, err
	}
	data, err := os.ReadFile(blobPath(dir, mdesc.Digest))
	if err != nil {
		return manifest, config, err
	}
	if err := json.Unmarshal(data, &manifest); err != nil {
		return manifest, config, fmt.Errorf("layout %s: manifest: %w", dir, err)
	}
	if data, err = os.ReadFile(blobPath(dir, manifest.Config.Digest)); err != nil {
		return manifest, config, err
	}
	if err := json.Unmarshal(data, &config); err != nil {
		return manifest, config, fmt.Errorf("layout %s: config: %w", dir, err)
	}
	return manifest, config, nil
}

func writeJSONBlob(blobs, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := digest.FromBytes(data)
	if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), data, 0o644); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}, nil
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// readLayout returns the manifest descriptor of a one-image layout.
func readLayout(dir string) (ocispec.Descriptor, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var index ocispec.Index
	if err := json.Unmarshal(data, &index); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layout %s: %w", dir, err)
	}
	if len(index.Manifests) != 1 {
		return ocispec.Descriptor{}, fmt.Errorf("layout %s: want one manifest, have %d", dir, len(index.Manifests))
	}
	return index.Manifests[0], nil
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func digestOf(h hash.Hash) digest.Digest {
	return digest.NewDigest(digest.SHA256, h)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
