package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Current reports whether containerd holds recipe's image, built from this
// very recipe, unpacked into snapshotter. ctx carries the namespace.
func Current(ctx context.Context, client *containerd.Client, recipe Recipe, snapshotter string) (bool, error) {
	img, err := client.ImageService().Get(ctx, recipe.Reference)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if img.Labels[labelRecipe] != recipe.Digest {
		return false, nil
	}
	return containerd.NewImage(client, img).IsUnpacked(ctx, snapshotter)
}

// Import copies the layout in dir into containerd's content store, names
// it ref (replacing an older image of that name), labels it with the
// recipe digest, and unpacks it into snapshotter. ctx carries the
// namespace.
func Import(ctx context.Context, client *containerd.Client, dir, ref, snapshotter string) (err error) {
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	defer endLease(ctx, done, &err)

	mdesc, err := readLayout(dir)
	if err != nil {
		return err
	}
	mdata, err := os.ReadFile(blobPath(dir, mdesc.Digest))
	if err != nil {
		return err
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(mdata, &manifest); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}

	cs := client.ContentStore()
	gc := gcLabels(manifest)
	for _, d := range append([]ocispec.Descriptor{manifest.Config}, manifest.Layers...) {
		if err := writeBlob(ctx, cs, dir, d, nil); err != nil {
			return err
		}
	}
	target := ocispec.Descriptor{MediaType: mdesc.MediaType, Digest: mdesc.Digest, Size: mdesc.Size}
	if err := writeBlob(ctx, cs, dir, target, gc); err != nil {
		return err
	}

	img := images.Image{
		Name:   ref,
		Target: target,
		Labels: map[string]string{labelRecipe: mdesc.Annotations[labelRecipe]},
	}
	return unpackAndName(ctx, client, img, snapshotter)
}

// gcLabels are the labels by which a manifest keeps its config and layers
// from being collected as garbage once the lease that wrote them ends.
func gcLabels(manifest ocispec.Manifest) map[string]string {
	gc := map[string]string{"containerd.io/gc.ref.content.config": manifest.Config.Digest.String()}
	for i, l := range manifest.Layers {
		gc["containerd.io/gc.ref.content.l."+strconv.Itoa(i)] = l.Digest.String()
	}
	return gc
}

// unpackAndName unpacks img into snapshotter, then creates it, or points the
// existing image of its name at img's target and labels. Unpacked before
// it is named: a request never finds the name on an image it cannot run.
func unpackAndName(ctx context.Context, client *containerd.Client, img images.Image, snapshotter string) error {
	if err := containerd.NewImageWithPlatform(client, img, platforms.Default()).Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", img.Name, err)
	}
	is := client.ImageService()
	if _, err := is.Create(ctx, img); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("create image %s: %w", img.Name, err)
		}
		if _, err := is.Update(ctx, img, "target", "labels"); err != nil {
			return fmt.Errorf("update image %s: %w", img.Name, err)
		}
	}
	return nil
}

func writeBlob(ctx context.Context, cs content.Store, dir string, d ocispec.Descriptor, labels map[string]string) error {
	f, err := os.Open(blobPath(dir, d.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := content.WriteBlob(ctx, cs, "runtimed-import-"+d.Digest.String(), f, d, opts...); err != nil {
		return fmt.Errorf("write blob %s: %w", d.Digest, err)
	}
	return nil
}

// Provided says how Provide got a recipe's image into containerd.
type Provided struct {
	// Current: containerd held it already, built from this recipe.
	Current bool
	// Cached: the build cache held the recipe's build; else it was built
	// (in BuildTime).
	Cached    bool
	Dir       string
	BuildTime time.Duration
	// Imported: it was imported (in ImportTime).
	Imported   bool
	ImportTime time.Duration
}

// Provide makes containerd hold recipe's image: nothing to do if it holds
// it built from this recipe; else the cached build, or a new one, is
// imported. With a nil client the build goes into the cache only. ctx
// carries the namespace.
func Provide(ctx context.Context, client *containerd.Client, recipe Recipe, opts BuildOpts, snapshotter string) (Provided, error) {
	var p Provided
	if client != nil {
		current, err := Current(ctx, client, recipe, snapshotter)
		if err != nil || current {
			p.Current = current
			return p, err
		}
	}
	p.Cached = cached(opts.CacheDir, recipe)
	start := time.Now()
	dir, err := build(ctx, recipe, opts)
	if err != nil {
		return p, err
	}
	p.Dir, p.BuildTime = dir, time.Since(start)
	if client == nil {
		return p, nil
	}
	start = time.Now()
	if err := Import(ctx, client, dir, recipe.Reference, snapshotter); err != nil {
		return p, err
	}
	p.Imported, p.ImportTime = true, time.Since(start)
	return p, nil
}

// endLease ends an image change's lease, even when ctx is cancelled; if
// that fails and the change did not, the change reports it (a lease left
// holds its content until it expires).
func endLease(ctx context.Context, done func(context.Context) error, err *error) {
	if lerr := done(context.WithoutCancel(ctx)); lerr != nil && *err == nil {
		*err = fmt.Errorf("end the lease: %w", lerr)
	}
}
