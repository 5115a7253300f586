package image

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
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
	if img.Labels[LabelRecipe] != recipe.Digest {
		return false, nil
	}
	return containerd.NewImage(client, img).IsUnpacked(ctx, snapshotter)
}

// Import copies the layout in dir into containerd's content store, names
// it ref (replacing an older image of that name), labels it with the
// recipe digest, and unpacks it into snapshotter. ctx carries the
// namespace.
func Import(ctx context.Context, client *containerd.Client, dir, ref, snapshotter string) error {
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	defer done(context.WithoutCancel(ctx))

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
	// The manifest's labels keep its config and layers from being
	// collected as garbage once the lease ends.
	gc := map[string]string{"containerd.io/gc.ref.content.config": manifest.Config.Digest.String()}
	for i, l := range manifest.Layers {
		gc["containerd.io/gc.ref.content.l."+strconv.Itoa(i)] = l.Digest.String()
	}
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
		Labels: map[string]string{LabelRecipe: mdesc.Annotations[LabelRecipe]},
	}
	is := client.ImageService()
	if _, err := is.Create(ctx, img); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("create image %s: %w", ref, err)
		}
		if _, err := is.Update(ctx, img, "target", "labels"); err != nil {
			return fmt.Errorf("update image %s: %w", ref, err)
		}
	}
	if err := containerd.NewImage(client, img).Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", ref, err)
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
