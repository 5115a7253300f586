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
	"sort"
	"strings"

	"github.com/runtimed/runtimed/internal/config"
)

// builderVersion changes when the way images are built changes, so that
// every image is rebuilt even though no recipe did.
const builderVersion = "5"

// labelRecipe on an image in containerd holds the digest of the recipe it
// was built from.
const labelRecipe = "io.runtimed.recipe"

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
	// Env is the image config's environment.
	Env []string `toml:"env"`

	// Digest identifies the recipe's content and the builder's version.
	Digest string `toml:"-"`
}

// LoadRecipe reads and checks one recipe file, strictly.
func LoadRecipe(path string) (Recipe, error) {
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
	case len(r.Packages) == 0:
		return r, fmt.Errorf("recipe %s: packages must be set", path)
	}
	for _, p := range r.Remove {
		if !filepath.IsAbs(p) || strings.Contains(p, "..") {
			return r, fmt.Errorf("recipe %s: remove path %q must be absolute and without \"..\"", path, p)
		}
	}
	sum := sha256.Sum256(append([]byte("runtimed-image-builder/"+builderVersion+"\n"), data...))
	r.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return r, nil
}

// LoadRecipes reads every *.toml recipe in dir, sorted by name.
func LoadRecipes(dir string) ([]Recipe, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no recipes (*.toml) in %s", dir)
	}
	var out []Recipe
	for _, p := range paths {
		r, err := LoadRecipe(p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
