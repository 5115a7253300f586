package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"time"
)

// RecipeState says how a language image relates to its recipe.
type RecipeState string

const (
	// RecipeCurrent: the image was built from the recipe as it is now.
	RecipeCurrent RecipeState = "current"
	// RecipeChanged: the image was built from an earlier version of the
	// recipe; `runtimectl images build` rebuilds it.
	RecipeChanged RecipeState = "changed"
	// RecipeOther: the image was imported or pulled, not built from the
	// recipe there is for it.
	RecipeOther RecipeState = "other"
	// RecipeNotBuilt: there is a recipe, and containerd holds no image of
	// its reference.
	RecipeNotBuilt RecipeState = "not_built"
	// RecipeNone: there is no recipe for the image.
	RecipeNone RecipeState = "none"
)

// Image is one image: a language's, or one in runtimed's containerd
// namespace that no language uses.
type Image struct {
	Reference string `json:"reference"`
	// Languages are the languages whose image it is.
	Languages []string `json:"languages"`
	// Present: containerd holds it. Size and Created are known only then.
	Present   bool      `json:"present"`
	SizeBytes int64     `json:"size_bytes,omitempty"`
	Created   time.Time `json:"created,omitempty"`
	// Recipe is the recipe this image is built from, if there is one,
	// and RecipeState how the image relates to it.
	Recipe      string      `json:"recipe,omitempty"`
	RecipeState RecipeState `json:"recipe_state"`
	// Building: the daemon is building it in the background (or will,
	// after the ones before it); its languages answer image_not_ready.
	Building bool `json:"building,omitempty"`
}

// Images is the answer of GET /v1/images.
type Images struct {
	Images []Image `json:"images"`
}

// ImageBuildRequest is the body of POST /v1/images/build.
type ImageBuildRequest struct {
	// Recipe names the recipe, which is named after its language.
	Recipe string `json:"recipe"`
}

// ImageReference is the body of POST /v1/images/pull and
// /v1/images/remove.
type ImageReference struct {
	// Reference names the image: for a pull, any OCI registry reference,
	// e.g. python:3.11-slim or registry.example.com/judge/python@sha256:...
	Reference string `json:"reference"`
}

// ImageAction says what an image request did.
type ImageAction string

const (
	ImageBuilt    ImageAction = "built"
	ImageUpToDate ImageAction = "up_to_date"
	ImageImported ImageAction = "imported"
	ImagePulled   ImageAction = "pulled"
	ImageRemoved  ImageAction = "removed"
)

// ImageResult is the answer to a build, import, pull or removal: one per
// image it touched.
type ImageResult struct {
	Images []ImageChange `json:"images"`
}

// ImageChange is what happened to one image.
type ImageChange struct {
	Reference string      `json:"reference"`
	Action    ImageAction `json:"action"`
	// Cached: a build found the recipe's image in the build cache.
	Cached     bool  `json:"cached,omitempty"`
	SizeBytes  int64 `json:"size_bytes,omitempty"`
	DurationMS int64 `json:"duration_ms"`
}

// Images lists the languages' images and the others runtimed holds.
func (c *Client) Images(ctx context.Context) (*Images, error) {
	var out Images
	return &out, c.do(ctx, http.MethodGet, "/v1/images", nil, &out)
}

// BuildEvent is one line of a streamed build's answer (POST
// /v1/images/build with Accept: application/x-ndjson): progress (Data, a
// line per step, as it ends), then done (Result) or error (Error).
type BuildEvent struct {
	Event  string       `json:"event"`
	Data   string       `json:"data,omitempty"`
	Result *ImageResult `json:"result,omitempty"`
	Error  *Error       `json:"error,omitempty"`
}

// A streamed build's events: a step, the end, a failure.
const (
	BuildProgress = "progress"
	BuildDone     = "done"
	BuildError    = "error"
)

// BuildImageStream builds as BuildImage does, and calls progress with each
// step's line as runtimed reports it.
func (c *Client) BuildImageStream(ctx context.Context, recipe string, progress func(line string)) (*ImageResult, error) {
	data, err := json.Marshal(ImageBuildRequest{Recipe: recipe})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/images/build", bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", ContentTypeNDJSON+", application/json;q=0.5")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode/100 != 2 || mt != ContentTypeNDJSON {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			return nil, errorAnswerOf(resp, body)
		}
		var out ImageResult
		return &out, json.Unmarshal(body, &out)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev BuildEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read the build's stream: %w", err)
		}
		switch {
		case ev.Event == BuildProgress && progress != nil:
			progress(ev.Data)
		case ev.Event == BuildDone && ev.Result != nil:
			return ev.Result, nil
		case ev.Event == BuildError && ev.Error != nil:
			return nil, ev.Error
		}
	}
}

// BuildImage builds the recipe's image (unless its build is cached) and
// imports it (unless it is current).
func (c *Client) BuildImage(ctx context.Context, recipe string) (*ImageResult, error) {
	var out ImageResult
	return &out, c.do(ctx, http.MethodPost, "/v1/images/build", ImageBuildRequest{Recipe: recipe}, &out)
}

// PullImage pulls ref from its registry.
func (c *Client) PullImage(ctx context.Context, ref string) (*ImageResult, error) {
	var out ImageResult
	return &out, c.do(ctx, http.MethodPost, "/v1/images/pull", ImageReference{Reference: ref}, &out)
}

// ImportImage imports an image archive (an OCI layout or `docker save`
// tar). ref, if set, names its one image.
func (c *Client) ImportImage(ctx context.Context, archive io.Reader, ref string) (*ImageResult, error) {
	path := "/v1/images/import"
	if ref != "" {
		path += "?reference=" + url.QueryEscape(ref)
	}
	var out ImageResult
	return &out, c.send(ctx, http.MethodPost, path, "application/x-tar", archive, &out)
}

// RemoveImage removes ref from containerd.
func (c *Client) RemoveImage(ctx context.Context, ref string) (*ImageResult, error) {
	var out ImageResult
	return &out, c.do(ctx, http.MethodPost, "/v1/images/remove", ImageReference{Reference: ref}, &out)
}
