// Package editjob runs one edit request on a diffusion engine and stores
// what it produced: the PNGs (content-addressed, with the spec embedded),
// the spec's result record (so the same spec later comes from the store
// without running the model) and the protocol.Result a client receives.
//
// It is the one place that turns an engine run into a stored result: the
// cluster's workers run every edit through it, so results are stored in
// one form and any gateway can serve what any worker made.
package editjob

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"reword/backend/diffusion"
	"reword/backend/diffusion/pngtext"
	"reword/backend/photo"
	"reword/backend/store"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// ErrPhotoExpired means the photo a spec names left the store (evicted)
// between the request and the run.
var ErrPhotoExpired = errors.New("the photo this edit refers to has expired from the server (or was never uploaded): upload it again")

// ErrorOf is the client-facing error of a failed run: invalid specs and
// photos are the client's to fix, anything else is the server's.
func ErrorOf(err error) *protocol.Error {
	var probs edit.Problems
	switch {
	case errors.As(err, &probs):
		return SpecError(err)
	case errors.Is(err, ErrPhotoExpired):
		return &protocol.Error{Code: protocol.CodeNotFound, Field: "spec.image", Message: err.Error()}
	case errors.Is(err, photo.ErrCorrupt), errors.Is(err, photo.ErrUnsupported), errors.Is(err, photo.ErrTooLarge):
		return &protocol.Error{Code: protocol.CodeInvalidSpec, Field: "spec.image", Message: err.Error()}
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "the edit failed: " + err.Error()}
}

// Request is one edit to run.
type Request struct {
	// ID is the client's request id; preview frames carry it.
	ID string
	// Spec is the resolved spec (every default filled in).
	Spec edit.Spec
	// HeatMaps asks for the per-token attention maps in the result.
	HeatMaps bool
	// PhotoLimits bound a photo the spec edits (zero: photo.DefaultLimits).
	PhotoLimits photo.Limits
}

// Events receive a run's progress. Either may be nil. They are called from
// the engine's preview goroutine and must not block for long.
type Events struct {
	// Preview receives each progressive preview as an encoded binary frame
	// (protocol.EncodePreview), with its row.
	Preview func(frame []byte, row int)
	// Progress receives the step count after each step of row 0.
	Progress func(protocol.Progress)
}

// Record is what the store keeps per resolved spec, so that opening an
// edit link again shows the stored images without running the model.
type Record struct {
	Images []protocol.Image `json:"images"`
	Link   string           `json:"link"`
}

// ImageURL is where the server serves a stored image.
func ImageURL(hash string) string { return "/images/" + hash + ".png" }

// Engine runs edits: a *diffusion.Engine.
type Engine interface {
	Edit(ctx context.Context, spec edit.Spec, opts diffusion.RunOptions, onPreview func(diffusion.Preview)) (*diffusion.Result, error)
}

// Run runs req on engine, streams its previews and progress to ev, stores
// the images and the spec's record in st, and returns the result. A spec
// that edits a photo reads the photo from st.
func Run(ctx context.Context, engine Engine, st *store.Store, req Request, ev Events) (*protocol.Result, error) {
	t0 := time.Now()
	opts := diffusion.RunOptions{HeatMaps: req.HeatMaps}
	if req.Spec.Image != "" {
		data, _, err := st.Image(ctx, req.Spec.Image)
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrPhotoExpired
		}
		if err != nil {
			return nil, fmt.Errorf("reading the photo %s: %w", req.Spec.Image, err)
		}
		opts.Photo = &diffusion.Photo{Data: data, Limits: req.PhotoLimits}
	}
	// Progress follows the steps of whichever rows are previewed: a
	// replayed source row (a cached source, a photo) is not previewed in
	// every step, or at all. The engine delivers previews on one
	// goroutine, in step order per row.
	progressed := 0
	onPreview := func(p diffusion.Preview) {
		if ev.Preview != nil {
			frame, err := protocol.EncodePreview(protocol.Preview{
				ID: req.ID, Format: protocol.FormatRGBA, Row: p.Row, Step: p.Step, Total: p.Total,
				Width: p.Width, Height: p.Height, Pixels: rgbToRGBA(p.RGB),
			})
			if err == nil {
				ev.Preview(frame, p.Row)
			}
		}
		if ev.Progress != nil && !p.Final && p.Step > progressed {
			progressed = p.Step
			ev.Progress(protocol.Progress{Step: p.Step, Total: p.Total})
		}
	}
	out, err := engine.Edit(ctx, req.Spec, opts, onPreview)
	if err != nil {
		return nil, err
	}
	link, err := edit.EncodeLink(req.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the edit link: %w", err)
	}
	specJSON, err := json.Marshal(req.Spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the spec: %w", err)
	}
	res := &protocol.Result{Spec: req.Spec, Link: link}
	// Each image is leased until the run has stored them all and its
	// record, so that writing the last cannot evict the first.
	for _, im := range out.Images {
		var buf bytes.Buffer
		if err := pngtext.Encode(&buf, im.NRGBA(), pngtext.SpecEntries(specJSON)...); err != nil {
			return nil, fmt.Errorf("encoding image %d: %w", im.Row, err)
		}
		hash, lease, err := st.PutImageLeased(ctx, buf.Bytes(), "image/png")
		if err != nil {
			return nil, err
		}
		defer lease.Release()
		res.Images = append(res.Images, protocol.Image{Row: im.Row, Hash: hash, URL: ImageURL(hash), Width: im.Width, Height: im.Height})
	}
	key, err := RecordKey(req.Spec)
	if err != nil {
		return nil, err
	}
	rec, err := json.Marshal(Record{Images: res.Images, Link: link})
	if err != nil {
		return nil, fmt.Errorf("encoding the result record: %w", err)
	}
	if err := st.PutRecord(ctx, key, rec); err != nil {
		return nil, err
	}
	res.HeatMaps = HeatMapsOf(out.HeatMaps)
	res.Timings = protocol.Timings{
		RunMS:          protocol.Milliseconds(time.Since(t0)),
		FirstPreviewMS: protocol.Milliseconds(out.Timings.FirstPreview),
		StepMS:         protocol.Milliseconds(out.Timings.PerStep()),
	}
	return res, nil
}

// Cached returns the stored result of a resolved spec when its record and
// every image of it are still stored.
func Cached(ctx context.Context, st *store.Store, spec edit.Spec) (*protocol.Result, bool) {
	key, err := RecordKey(spec)
	if err != nil {
		return nil, false
	}
	data, err := st.Record(ctx, key)
	if err != nil {
		return nil, false
	}
	var rec Record
	if json.Unmarshal(data, &rec) != nil || len(rec.Images) == 0 {
		return nil, false
	}
	for _, im := range rec.Images {
		if !st.ImageExists(ctx, im.Hash) {
			return nil, false
		}
	}
	return &protocol.Result{Images: rec.Images, Spec: spec, Link: rec.Link, Cached: true}, true
}

// RecordKey identifies a resolved spec: the hash of its canonical JSON
// under the version of what spec fields mean (edit.MeaningVersion), so
// that a result stored when a field ran another edit is never served for
// the same JSON now (it stays stored under its old key).
func RecordKey(spec edit.Spec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encoding the spec: %w", err)
	}
	return store.Hash(append(fmt.Appendf(nil, "reword spec meaning v%d\n", edit.MeaningVersion), b...)), nil
}

// Rows lists the images a resolved spec produces: the source, then each
// target.
func Rows(r edit.Resolved) []protocol.Row {
	out := []protocol.Row{{Index: 0, Role: protocol.RoleSource, Prompt: r.Source}}
	for i, t := range r.Targets {
		out = append(out, protocol.Row{Index: i + 1, Role: protocol.RoleTarget, Prompt: t})
	}
	return out
}

// SpecError turns validation problems into one error that lists them all.
func SpecError(err error) *protocol.Error {
	var probs edit.Problems
	if !errors.As(err, &probs) || len(probs) == 0 {
		return &protocol.Error{Code: protocol.CodeInvalidSpec, Message: err.Error()}
	}
	e := &protocol.Error{Code: protocol.CodeInvalidSpec, Message: probs.Error(), Field: "spec." + probs[0].Field}
	for _, p := range probs {
		e.Problems = append(e.Problems, protocol.Problem{Field: "spec." + p.Field, Message: p.Message})
	}
	return e
}

// HeatMapsOf normalizes each token's map to 0–255 for the client, leaving
// out BOS and EOS (they carry most of the attention and mean nothing).
func HeatMapsOf(maps []diffusion.HeatMap) []protocol.HeatMap {
	var out []protocol.HeatMap
	for _, hm := range maps {
		for k := 1; k < len(hm.Maps)-1 && k < len(hm.Tokens)-1; k++ {
			m := hm.Maps[k]
			peak := float32(0)
			for _, v := range m {
				peak = max(peak, v)
			}
			vals := make([]byte, len(m))
			if peak > 0 {
				for i, v := range m {
					vals[i] = byte(math.Round(float64(max(v, 0) / peak * 255)))
				}
			}
			out = append(out, protocol.HeatMap{Row: hm.Row, Token: k, Text: hm.Tokens[k], Width: hm.Width, Height: hm.Height, Values: vals})
		}
	}
	return out
}

func rgbToRGBA(rgb []byte) []byte {
	out := make([]byte, len(rgb)/3*4)
	for i, j := 0, 0; i+2 < len(rgb); i, j = i+3, j+4 {
		out[j], out[j+1], out[j+2], out[j+3] = rgb[i], rgb[i+1], rgb[i+2], 255
	}
	return out
}
