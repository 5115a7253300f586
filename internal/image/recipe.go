// Package image owns runtimed's language images: the recipes under
// packaging/images, building a slim root filesystem from Debian packages
// with debootstrap, caching it as an OCI image layout, and importing it
// into containerd.
package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/runtimed/runtimed/internal/config"
)

// builderVersion changes when the way images are built changes, so that
// every image is rebuilt even though no recipe did.
const builderVersion = "6"

// labelRecipe on an image in containerd holds the digest of the recipe it
// was built from.
const labelRecipe = "io.runtimed.recipe"

// LabelVersion, in an image's config, is the version of what the image
// runs, as its recipe's version command printed it (x.y.z).
const LabelVersion = "io.runtimed.version"

// Recipe says how to build one language's image.
type Recipe struct {
	// Name is the language name, and the recipe's file name.
	Name string `toml:"name"`
	// Reference is the image's name in containerd.
	Reference string `toml:"reference"`
	// Suite is the Debian release, e.g. bookworm.
	Suite string `toml:"suite"`
	// Packages are installed on top of debootstrap's minbase variant.
	Packages []string `toml:"packages"`
	// Remove lists paths (globs) removed after install, on top of the
	// docs, man pages, locales, apt lists and caches every image loses.
	Remove []string `toml:"remove"`
	// Setup are commands run in the new root (chroot) after the install,
	// e.g. to generate a class data sharing archive.
	Setup [][]string `toml:"setup"`
	// Check is a command run in the new root (chroot) to prove it works.
	Check []string `toml:"check"`
	// Version is a command run in the new root (chroot) that prints the
	// version of what the image runs: its first x.y.z (or x.y) is the
	// image's io.runtimed.version label, which runtimed reports as the
	// language's version.
	Version []string `toml:"version"`
	// Downloads are archives from outside Debian's archive, pinned by
	// digest, unpacked into the image after its packages are installed.
	Downloads []Download `toml:"download"`
	// Env is the image config's environment (after its parent's).
	Env []string `toml:"env"`
	// Parent, if set, names the recipe (in the same directory, of the
	// same suite) whose image this one is built on: its layers come
	// first, and this recipe's packages are a layer on top. Without, the
	// image is built on the suite's base layer, debootstrap's minbase.
	Parent string `toml:"parent"`

	// Digest identifies the recipe's content, its parent's (or the
	// base's) and the builder's version.
	Digest string `toml:"-"`

	// parent is the recipe whose layout this one's layer goes on: Parent's,
	// or the suite's base (which has none).
	parent *Recipe
	// base marks a suite's base: debootstrap's minbase, no image of its own.
	base bool
}

// suiteName is a Debian release's name (bookworm, trixie, sid).
var suiteName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// maxAncestors bounds a recipe's chain of parents.
const maxAncestors = 8

// baseRecipe is the base layer of suite's images: debootstrap's minbase,
// slimmed, with runtimed's mount points.
func baseRecipe(suite string) Recipe {
	sum := sha256.Sum256([]byte("runtimed-image-builder/" + builderVersion + "\nbase\n" + suite + "\n"))
	return Recipe{Name: "base-" + suite, Suite: suite, Digest: "sha256:" + hex.EncodeToString(sum[:]), base: true}
}

// Layers are the names of the recipes whose layers an image of r has,
// bottom first: the base, its ancestors, r.
func (r Recipe) Layers() []string {
	var out []string
	for p := &r; p != nil; p = p.parent {
		out = append([]string{p.Name}, out...)
	}
	return out
}

// LoadRecipe reads and checks one recipe file, strictly, and its
// parent's, from the same directory.
func LoadRecipe(path string) (Recipe, error) {
	return loadRecipe(path, nil, nil)
}

// LoadRecipeWith is LoadRecipe with extra packages by image reference
// (config.Images.ExtraPackages): a recipe whose reference has some
// installs them too, and its digest (so its children's too) says so.
func LoadRecipeWith(path string, extra map[string][]string) (Recipe, error) {
	return loadRecipe(path, extra, nil)
}

func loadRecipe(path string, extra map[string][]string, children []string) (Recipe, error) {
	var r Recipe
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := config.DecodeStrict(data, &r); err != nil {
		return r, fmt.Errorf("recipe %s: %w", path, err)
	}
	switch {
	case r.Name == "":
		return r, fmt.Errorf("recipe %s: name must be set", path)
	case r.Reference == "":
		return r, fmt.Errorf("recipe %s: reference must be set", path)
	case r.Suite == "":
		return r, fmt.Errorf("recipe %s: suite must be set", path)
	case len(r.Packages) == 0 && len(r.Downloads) == 0:
		return r, fmt.Errorf("recipe %s: packages (or a download) must be set", path)
	case r.Name != strings.TrimSuffix(filepath.Base(path), ".toml"):
		return r, fmt.Errorf("recipe %s: name %q must be the file's name", path, r.Name)
	case !recipeName.MatchString(r.Name) || strings.HasPrefix(r.Name, "base-"):
		return r, fmt.Errorf("recipe %s: name %q must be a lower-case word, not base-*, which names the bases", path, r.Name)
	case !suiteName.MatchString(r.Suite):
		return r, fmt.Errorf("recipe %s: suite %q is not a Debian release's name", path, r.Suite)
	}
	if slices.Contains(children, r.Name) {
		return r, fmt.Errorf("recipe %s: built on %s itself", path, r.Name)
	}
	for _, p := range r.Packages {
		if !config.DebianPackage.MatchString(p) {
			return r, fmt.Errorf("recipe %s: %q is not a Debian package name", path, p)
		}
	}
	// The languages' own packages, in the digest as what the recipe says.
	var added []string
	for _, p := range extra[r.Reference] {
		if !config.DebianPackage.MatchString(p) {
			return r, fmt.Errorf("recipe %s: extra package %q is not a Debian package name", path, p)
		}
		if !slices.Contains(r.Packages, p) {
			r.Packages = append(r.Packages, p)
			added = append(added, p)
		}
	}
	if len(added) > 0 {
		data = append(append(data, "\n# runtimed: the languages' packages\n"...), strings.Join(added, " ")...)
	}
	for _, d := range r.Downloads {
		if err := d.check(); err != nil {
			return r, fmt.Errorf("recipe %s: %w", path, err)
		}
	}
	for _, p := range r.Remove {
		if !filepath.IsAbs(p) || strings.Contains(p, "..") {
			return r, fmt.Errorf("recipe %s: remove path %q must be absolute and without \"..\"", path, p)
		}
	}
	parent := baseRecipe(r.Suite)
	if r.Parent != "" {
		if !recipeName.MatchString(r.Parent) {
			return r, fmt.Errorf("recipe %s: parent %q is not a recipe name", path, r.Parent)
		}
		if r.Parent == r.Name || slices.Contains(children, r.Parent) {
			return r, fmt.Errorf("recipe %s: parent %s is built on %s itself", path, r.Parent, r.Name)
		}
		if len(children) >= maxAncestors {
			return r, fmt.Errorf("recipe %s: more than %d recipes below it", path, maxAncestors)
		}
		p, err := loadRecipe(filepath.Join(filepath.Dir(path), r.Parent+".toml"), extra, append(children, r.Name))
		if err != nil {
			return r, fmt.Errorf("recipe %s: parent: %w", path, err)
		}
		if p.Suite != r.Suite {
			return r, fmt.Errorf("recipe %s: suite %s, its parent %s's %s: a layer goes on its own release only", path, r.Suite, p.Name, p.Suite)
		}
		parent = p
	}
	r.parent = &parent
	sum := sha256.Sum256(append([]byte("runtimed-image-builder/"+builderVersion+"\n"+parent.Digest+"\n"), data...))
	r.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return r, nil
}

// LoadRecipes reads every *.toml recipe in dir, sorted by name.
func LoadRecipes(dir string) ([]Recipe, error) { return LoadRecipesWith(dir, nil) }

// LoadRecipesWith is LoadRecipes with extra packages (see LoadRecipeWith).
func LoadRecipesWith(dir string, extra map[string][]string) ([]Recipe, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no recipes (*.toml) in %s", dir)
	}
	var out []Recipe
	for _, p := range paths {
		r, err := LoadRecipeWith(p, extra)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
