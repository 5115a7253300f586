package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/oci"
)

// RegistryError is a pull that a registry failed (or that could not
// reach it), as opposed to a bad request.
type RegistryError struct{ Err error }

func (e *RegistryError) Error() string { return e.Err.Error() }
func (e *RegistryError) Unwrap() error { return e.Err }

// Manager carries out the API's image requests in runtimed's containerd
// namespace: list, build from a recipe, import an archive, pull, remove.
// Changes happen one at a time.
type Manager struct {
	client      *containerd.Client
	namespace   string
	snapshotter string
	// changed is told each reference whose image changed, so that the
	// warm pools drop sandboxes made from the old one.
	changed func(ref string)
	// mu is held by a change; a channel so that waiting for it ends with
	// the request.
	mu chan struct{}
	// hosts resolves registries: HTTPS, except plain HTTP for loopback
	// registries.
	hosts docker.RegistryHosts
}

// NewManager returns a manager for the images of namespace, unpacked into
// snapshotter; changed (may be nil) is called after an image changed.
func NewManager(client *containerd.Client, namespace, snapshotter string, changed func(ref string)) *Manager {
	if changed == nil {
		changed = func(string) {}
	}
	return &Manager{
		client: client, namespace: namespace, snapshotter: snapshotter, changed: changed,
		mu:    make(chan struct{}, 1),
		hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	}
}

func (m *Manager) lock(ctx context.Context) (func(), error) {
	select {
	case m.mu <- struct{}{}:
		return func() { <-m.mu }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// List describes each image of uses (reference → the languages using
// it), then every other image in the namespace. Recipes are read from
// recipesDir each time, so that an edited recipe shows as changed.
func (m *Manager) List(ctx context.Context, cfg config.Images, uses map[string][]string) ([]api.Image, error) {
	ctx = m.ns(ctx)
	recipes, err := recipesByReference(cfg.Recipes, cfg.ExtraPackages)
	if err != nil {
		return nil, err
	}
	all, err := m.client.ImageService().List(ctx)
	if err != nil {
		return nil, err
	}
	held := map[string]images.Image{}
	for _, img := range all {
		held[img.Name] = img
	}
	var refs []string
	for ref := range uses {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool { return uses[refs[i]][0] < uses[refs[j]][0] })
	var others []string
	for ref := range held {
		if _, ok := uses[ref]; !ok {
			others = append(others, ref)
		}
	}
	sort.Strings(others)

	out := []api.Image{}
	for _, ref := range append(refs, others...) {
		im := api.Image{Reference: ref, Languages: uses[ref], RecipeState: api.RecipeNone}
		if im.Languages == nil {
			im.Languages = []string{}
		}
		img, present := held[ref]
		if present {
			im.Present = true
			im.Created = img.CreatedAt
			if im.SizeBytes, err = m.imageSize(ctx, img); err != nil {
				return nil, fmt.Errorf("size of %s: %w", ref, err)
			}
		}
		if r, ok := recipes[ref]; ok {
			im.Recipe = r.Name
			switch built := img.Labels[labelRecipe]; {
			case !present:
				im.RecipeState = api.RecipeNotBuilt
			case built == r.Digest:
				im.RecipeState = api.RecipeCurrent
			case built != "":
				im.RecipeState = api.RecipeChanged
			default:
				im.RecipeState = api.RecipeOther
			}
		}
		out = append(out, im)
	}
	return out, nil
}

// recipesByReference reads the recipes in dir (none if it does not
// exist) by the reference they build.
func recipesByReference(dir string, extra map[string][]string) (map[string]Recipe, error) {
	out := map[string]Recipe{}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	rs, err := LoadRecipesWith(dir, extra)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		out[r.Reference] = r
	}
	return out, nil
}

var recipeName = regexp.MustCompile(`^[a-z0-9][a-z0-9_+.-]*$`)

// Build builds the named recipe's image, or a language's (see
// RecipeNames), unless the build cache holds it, and imports it (unless
// containerd holds it already, built from this recipe). The build's
// output goes to out.
func (m *Manager) Build(ctx context.Context, cfg config.Images, name string, imageOf func(string) (string, error), out, progress io.Writer) (api.ImageChange, error) {
	start := time.Now()
	names, err := RecipeNames(cfg, []string{name}, imageOf)
	if err != nil {
		return api.ImageChange{}, err
	}
	r, err := LoadRecipeWith(filepath.Join(cfg.Recipes, names[0]+".toml"), cfg.ExtraPackages)
	if err != nil {
		return api.ImageChange{}, err
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return api.ImageChange{}, err
	}
	defer unlock()
	ctx = m.ns(ctx)
	change := api.ImageChange{Reference: r.Reference, Action: api.ImageUpToDate}
	p, err := Provide(ctx, m.client, r, BuildOpts{CacheDir: cfg.Cache, Mirror: cfg.Mirror, Output: out, Progress: progress}, m.snapshotter)
	if err != nil {
		return change, err
	}
	if !p.Current {
		change.Action, change.Cached = api.ImageBuilt, p.Cached
		m.changed(r.Reference)
	}
	change.SizeBytes = m.size(ctx, r.Reference)
	change.DurationMS = time.Since(start).Milliseconds()
	return change, nil
}

// ImportArchive imports the images of a tar archive: an OCI image layout
// or what `docker save` writes. Each image takes the name the archive
// gives it, or ref if set, which needs the archive to hold one image. An
// archive that fails a check creates no image.
func (m *Manager) ImportArchive(ctx context.Context, r io.Reader, ref string) (_ []api.ImageChange, err error) {
	start := time.Now()
	if ref != "" {
		if _, err := reference.ParseAnyReference(ref); err != nil {
			return nil, fmt.Errorf("reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
		}
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ctx, done, err := m.client.WithLease(m.ns(ctx))
	if err != nil {
		return nil, err
	}
	// Content no image refers to is collected once the lease ends.
	defer endLease(ctx, done, &err)

	cs := m.client.ContentStore()
	indexDesc, err := archive.ImportIndex(ctx, cs, r)
	if err != nil {
		return nil, fmt.Errorf("read the archive: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
	}
	data, err := content.ReadBlob(ctx, cs, indexDesc)
	if err != nil {
		return nil, err
	}
	var index ocispec.Index
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, fmt.Errorf("the archive's index: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
	}
	var entries []ocispec.Descriptor
	for _, d := range index.Manifests {
		if _, referrer := d.Annotations[images.AnnotationManifestSubject]; !referrer {
			entries = append(entries, d)
		}
	}
	switch {
	case len(entries) == 0:
		return nil, fmt.Errorf("the archive holds no image: %w", errdefs.ErrInvalidArgument)
	case ref != "" && len(entries) > 1:
		return nil, fmt.Errorf("the archive holds %d images; a reference names one (import it without, and each keeps its name): %w", len(entries), errdefs.ErrInvalidArgument)
	}
	var imgs []images.Image
	for i, d := range entries {
		name := ref
		if name == "" {
			name = archiveName(d.Annotations)
		}
		if name == "" {
			return nil, fmt.Errorf("image %d of the archive has no name; give it one with a reference: %w", i+1, errdefs.ErrInvalidArgument)
		}
		img := images.Image{Name: name, Target: d, Labels: map[string]string{}}
		if digest := d.Annotations[labelRecipe]; digest != "" {
			img.Labels[labelRecipe] = digest
		}
		// Every blob this platform needs must be there, and is kept.
		handler := images.SetChildrenLabels(cs, images.FilterPlatforms(images.ChildrenHandler(cs), platforms.Default()))
		if err := images.WalkNotEmpty(ctx, handler, d); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", name, err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
		}
		imgs = append(imgs, img)
	}
	var out []api.ImageChange
	for _, img := range imgs {
		if err := m.store(ctx, img); err != nil {
			return out, err
		}
		m.changed(img.Name)
		out = append(out, api.ImageChange{Reference: img.Name, Action: api.ImageImported, SizeBytes: m.size(ctx, img.Name), DurationMS: time.Since(start).Milliseconds()})
	}
	return out, nil
}

// archiveName is the name an archive gives an image: containerd's own
// annotation, else the OCI reference name.
func archiveName(annotations map[string]string) string {
	if n := annotations[images.AnnotationImageName]; n != "" {
		return n
	}
	return annotations[ocispec.AnnotationRefName]
}

// store unpacks and names img (see unpackAndName), with runtimed's mount points
// added if it lacks them. ctx carries a lease.
func (m *Manager) store(ctx context.Context, img images.Image) error {
	img, err := m.withMountPoints(ctx, img)
	if err != nil {
		return fmt.Errorf("%s: %w", img.Name, err)
	}
	return unpackAndName(ctx, m.client, img, m.snapshotter)
}

// Pull pulls ref (any registry reference; a short one like
// python:3.11-slim means Docker Hub's) and unpacks it. The image is named
// by the full reference, which Reference in the answer gives. Registries
// are reached over HTTPS, except on loopback addresses, over plain HTTP.
func (m *Manager) Pull(ctx context.Context, ref string) (_ api.ImageChange, err error) {
	start := time.Now()
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return api.ImageChange{}, fmt.Errorf("reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
	}
	unlock, err := m.lock(ctx)
	if err != nil {
		return api.ImageChange{}, err
	}
	defer unlock()
	ctx, done, err := m.client.WithLease(m.ns(ctx))
	if err != nil {
		return api.ImageChange{}, err
	}
	defer endLease(ctx, done, &err)
	full := named.String()
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: m.hosts})
	pulled, err := m.client.Pull(ctx, full,
		containerd.WithResolver(resolver),
		containerd.WithPlatformMatcher(platforms.Default()),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(m.snapshotter),
	)
	if err != nil {
		if ctx.Err() != nil {
			return api.ImageChange{}, err
		}
		return api.ImageChange{}, &RegistryError{fmt.Errorf("pull %s: %w", full, err)}
	}
	if err := m.store(ctx, pulled.Metadata()); err != nil {
		return api.ImageChange{}, err
	}
	m.changed(full)
	return api.ImageChange{Reference: full, Action: api.ImagePulled, SizeBytes: m.size(ctx, full), DurationMS: time.Since(start).Milliseconds()}, nil
}

// Remove removes ref, and with it (containerd's garbage collection,
// synchronously) its content and unpacked snapshots that nothing else
// uses.
func (m *Manager) Remove(ctx context.Context, ref string) (api.ImageChange, error) {
	start := time.Now()
	unlock, err := m.lock(ctx)
	if err != nil {
		return api.ImageChange{}, err
	}
	defer unlock()
	ctx = m.ns(ctx)
	if err := m.client.ImageService().Delete(ctx, ref, images.SynchronousDelete()); err != nil {
		if errdefs.IsNotFound(err) {
			return api.ImageChange{}, fmt.Errorf("no image %s: %w", ref, errdefs.ErrNotFound)
		}
		return api.ImageChange{}, err
	}
	m.changed(ref)
	return api.ImageChange{Reference: ref, Action: api.ImageRemoved, DurationMS: time.Since(start).Milliseconds()}, nil
}

// labelMountPoints in an image's config says runtimed added its mount
// points to it.
const labelMountPoints = "io.runtimed.mount-points"

// withMountPoints returns img, or, if its root lacks the mount points a
// sandbox needs (its root is read-only, so gVisor cannot create them),
// img with one more layer that holds them: /box and /.runtimed/init.
// Images runtimed built have them; any other gets the layer once. ctx
// carries a lease.
func (m *Manager) withMountPoints(ctx context.Context, img images.Image) (images.Image, error) {
	cs := m.client.ContentStore()
	manifest, err := images.Manifest(ctx, cs, img.Target, platforms.Default())
	if err != nil {
		return img, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
	}
	data, err := content.ReadBlob(ctx, cs, manifest.Config)
	if err != nil {
		return img, err
	}
	var config ocispec.Image
	if err := json.Unmarshal(data, &config); err != nil {
		return img, fmt.Errorf("image config: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // invalid argument, not the cause's category
	}
	if config.Config.Labels[labelRecipe] != "" || config.Config.Labels[labelMountPoints] != "" {
		return img, nil
	}

	layer, err := mountPointLayer()
	if err != nil {
		return img, err
	}
	layerType := ocispec.MediaTypeImageLayer
	if manifest.MediaType == images.MediaTypeDockerSchema2Manifest {
		layerType = images.MediaTypeDockerSchema2Layer
	}
	layerDesc := ocispec.Descriptor{MediaType: layerType, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	if err := content.WriteBlob(ctx, cs, "runtimed-mount-points", bytes.NewReader(layer), layerDesc); err != nil {
		return img, err
	}
	config.RootFS.DiffIDs = append(config.RootFS.DiffIDs, layerDesc.Digest)
	if len(config.History) > 0 {
		config.History = append(config.History, ocispec.History{CreatedBy: "runtimed: the mount points /box and /.runtimed/init"})
	}
	if config.Config.Labels == nil {
		config.Config.Labels = map[string]string{}
	}
	config.Config.Labels[labelMountPoints] = "added"
	configDesc, err := writeJSONContent(ctx, cs, manifest.Config.MediaType, config, nil)
	if err != nil {
		return img, err
	}
	manifest.Config = configDesc
	manifest.Layers = append(manifest.Layers, layerDesc)
	if manifest.MediaType == "" {
		manifest.MediaType = ocispec.MediaTypeImageManifest
	}
	target, err := writeJSONContent(ctx, cs, manifest.MediaType, manifest, gcLabels(manifest))
	if err != nil {
		return img, err
	}
	p := platforms.DefaultSpec()
	target.Platform = &p
	img.Target = target
	return img, nil
}

// mountPointLayer is a layer (an uncompressed tar) of the directory /box
// and the empty file /.runtimed/init, root's, mode 0755.
func mountPointLayer() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	for _, h := range []tar.Header{
		{Name: strings.TrimPrefix(oci.BoxDir, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch},
		{Name: strings.TrimPrefix(oci.AgentDir, "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch},
		{Name: strings.TrimPrefix(oci.AgentPath, "/"), Typeflag: tar.TypeReg, Mode: 0o755, ModTime: epoch},
	} {
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeJSONContent writes v to the content store as a blob of mediaType.
func writeJSONContent(ctx context.Context, cs content.Store, mediaType string, v any, labels map[string]string) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	var opts []content.Opt
	if labels != nil {
		opts = append(opts, content.WithLabels(labels))
	}
	if err := content.WriteBlob(ctx, cs, "runtimed-"+desc.Digest.String(), bytes.NewReader(data), desc, opts...); err != nil {
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

func (m *Manager) ns(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, m.namespace)
}

// size is ref's size for an answer; 0 if it cannot be had.
func (m *Manager) size(ctx context.Context, ref string) int64 {
	img, err := m.client.ImageService().Get(ctx, ref)
	if err != nil {
		return 0
	}
	n, _ := m.imageSize(ctx, img)
	return n
}

// imageSize is the size of img's content for this platform.
func (m *Manager) imageSize(ctx context.Context, img images.Image) (int64, error) {
	return containerd.NewImageWithPlatform(m.client, img, platforms.Default()).Size(ctx)
}

// RecipeNames names the recipes to build for what a user asked for:
// each of names is a language, given to imageOf (nil: none), which
// answers the image the language runs in, whose recipe it names; or
// else a recipe's name. The error wraps errdefs.ErrNotFound where
// neither fits.
func RecipeNames(cfg config.Images, names []string, imageOf func(string) (string, error)) ([]string, error) {
	byRef, err := recipesByReference(cfg.Recipes, cfg.ExtraPackages)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		var langErr error
		if imageOf != nil {
			ref, err := imageOf(n)
			if err == nil {
				r, ok := byRef[ref]
				if !ok {
					return nil, fmt.Errorf("%s runs in %s, which no recipe in %s builds: %w", n, ref, cfg.Recipes, errdefs.ErrNotFound)
				}
				if !slices.Contains(out, r.Name) {
					out = append(out, r.Name)
				}
				continue
			}
			langErr = err
		}
		if recipeName.MatchString(n) {
			if _, err := os.Stat(filepath.Join(cfg.Recipes, n+".toml")); err == nil {
				if !slices.Contains(out, n) {
					out = append(out, n)
				}
				continue
			}
		}
		if !recipeName.MatchString(n) {
			return nil, fmt.Errorf("%q names neither a language nor a recipe: %w", n, errdefs.ErrInvalidArgument)
		}
		if langErr != nil {
			return nil, fmt.Errorf("no recipe %s in %s, and no language of that name (%w): %w", n, cfg.Recipes, langErr, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("no recipe %s in %s: %w", n, cfg.Recipes, errdefs.ErrNotFound)
	}
	return out, nil
}
