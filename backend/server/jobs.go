package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"reword/backend/diffusion"
	"reword/backend/diffusion/pngtext"
	"reword/backend/photo"
	"reword/backend/queue"
	"reword/backend/store"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// errPhotoExpired means the photo a spec names left the store (evicted)
// between the request and the run.
var errPhotoExpired = errors.New("the photo this edit refers to has expired from the server (or was never uploaded): upload it again")

// maxRequestID bounds client-chosen request ids (they appear in preview
// frame headers, which give them one length byte).
const maxRequestID = 128

// resultRecord is what the store keeps per resolved spec, so that opening
// an edit link again shows the stored images without running the model.
type resultRecord struct {
	Images []protocol.Image `json:"images"`
	Link   string           `json:"link"`
}

// handleRun validates a run request and queues it. Everything the client
// sent is checked here again, whatever the browser already checked.
func (c *conn) handleRun(id string, run *protocol.Run) {
	s := c.s
	switch {
	case id == "":
		c.sendError("", &protocol.Error{Code: protocol.CodeBadMessage, Message: "a run needs a request id in the envelope's id", Field: "id"})
		return
	case len(id) > maxRequestID:
		c.sendError("", &protocol.Error{Code: protocol.CodeBadMessage, Message: fmt.Sprintf("request id is longer than %d bytes", maxRequestID), Field: "id"})
		return
	case s.engine == nil:
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotReady, Message: "the model is not ready: " + s.problem})
		return
	}
	r, err := run.Spec.Resolve(s.engine.Defaults())
	if err != nil {
		c.sendError(id, specError(err))
		return
	}
	if r.Image != "" && !s.store.HasImage(r.Image) {
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotFound, Field: "spec.image", Message: errPhotoExpired.Error()})
		return
	}
	spec := r.Spec()
	key, err := recordKey(spec)
	if err != nil {
		c.sendError(id, &protocol.Error{Code: protocol.CodeInternal, Message: err.Error()})
		return
	}
	if !run.HeatMaps {
		if res, ok := c.cachedResult(key, spec); ok {
			s.metrics.jobs.WithLabelValues("cached").Inc()
			c.sendMessage(protocol.TypeResult, id, res)
			return
		}
	}

	c.mu.Lock()
	if _, dup := c.jobs[id]; dup {
		c.mu.Unlock()
		c.sendError(id, &protocol.Error{Code: protocol.CodeDuplicateID, Message: "a request with this id is already queued or running", Field: "id"})
		return
	}
	submitted := time.Now()
	var started time.Time
	log := s.log.With("conn", c.id, "request", id)
	ticket, err := s.queue.Submit(queue.Job{
		Client:     c.id,
		OnPosition: func(p int) { c.sendMessage(protocol.TypeQueued, id, protocol.Queued{Position: p}) },
		OnStart: func() {
			started = time.Now()
			c.sendMessage(protocol.TypeStarted, id, protocol.Started{Rows: rows(r), Steps: r.Steps, Spec: spec})
		},
		Run: func(ctx context.Context) error {
			res, err := c.runEdit(ctx, id, spec, key, run.HeatMaps, log)
			if err != nil {
				return err
			}
			res.Timings.QueuedMS = ms(started.Sub(submitted))
			c.dropPreviews(id)
			c.sendMessage(protocol.TypeResult, id, res)
			return nil
		},
	})
	if err == nil {
		c.jobs[id] = ticket
	}
	c.mu.Unlock()
	if err != nil {
		code := protocol.CodeBusy
		switch {
		case errors.Is(err, queue.ErrClientLimit):
			code = protocol.CodeTooMany
		case errors.Is(err, queue.ErrClosed):
			code = protocol.CodeShutdown
		}
		c.sendError(id, &protocol.Error{Code: code, Message: err.Error()})
		return
	}
	log.Info("edit queued", "targets", len(r.Targets), "steps", r.Steps)
	go c.await(id, ticket, log)
}

// await reports how a queued request ended, unless it produced a result.
func (c *conn) await(id string, t *queue.Ticket, log *slog.Logger) {
	err := t.Err()
	c.mu.Lock()
	delete(c.jobs, id)
	c.mu.Unlock()
	c.dropPreviews(id)
	if err == nil {
		c.s.metrics.jobs.WithLabelValues("ok").Inc()
		return
	}
	e := jobError(err)
	c.s.metrics.jobs.WithLabelValues(string(e.Code)).Inc()
	if e.Code == protocol.CodeInternal {
		log.Error("edit failed", "err", err)
	} else {
		log.Info("edit ended", "code", e.Code)
	}
	c.sendError(id, e)
}

func (c *conn) handleCancel(id string) {
	c.mu.Lock()
	t, ok := c.jobs[id]
	c.mu.Unlock()
	if !ok {
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotFound, Message: "no queued or running request has this id", Field: "id"})
		return
	}
	t.Cancel()
}

func (c *conn) cancelAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.jobs {
		t.Cancel()
	}
}

// runEdit runs one edit on the engine, streaming previews and progress,
// then stores the images.
func (c *conn) runEdit(ctx context.Context, id string, spec edit.Spec, key string, heatMaps bool, log *slog.Logger) (*protocol.Result, error) {
	s := c.s
	t0 := time.Now()
	onPreview := func(p diffusion.Preview) {
		frame, err := protocol.EncodePreview(protocol.Preview{
			ID: id, Format: protocol.FormatRGBA, Row: p.Row, Step: p.Step, Total: p.Total,
			Width: p.Width, Height: p.Height, Pixels: rgbToRGBA(p.RGB),
		})
		if err != nil {
			log.Error("encoding a preview", "err", err)
			return
		}
		c.pushPreview(previewKey{id, p.Row}, frame)
		if p.Row == 0 && !p.Final {
			c.sendMessage(protocol.TypeProgress, id, protocol.Progress{Step: p.Step, Total: p.Total})
		}
	}
	opts := diffusion.RunOptions{HeatMaps: heatMaps}
	if spec.Image != "" {
		data, _, err := s.store.Image(ctx, spec.Image)
		if errors.Is(err, store.ErrNotFound) {
			return nil, errPhotoExpired
		}
		if err != nil {
			return nil, err
		}
		opts.Photo = &diffusion.Photo{Data: data, Limits: s.photoLimits()}
	}
	out, err := s.engine.Edit(ctx, spec, opts, onPreview)
	if err != nil {
		return nil, err
	}
	link, err := edit.EncodeLink(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding the edit link: %w", err)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	res := &protocol.Result{Spec: spec, Link: link}
	for _, im := range out.Images {
		var buf bytes.Buffer
		if err := pngtext.Encode(&buf, im.NRGBA(), pngtext.SpecKey, string(specJSON)); err != nil {
			return nil, fmt.Errorf("encoding image %d: %w", im.Row, err)
		}
		hash, err := s.store.PutImage(ctx, buf.Bytes(), "image/png")
		if err != nil {
			return nil, err
		}
		res.Images = append(res.Images, protocol.Image{Row: im.Row, Hash: hash, URL: imageURL(hash), Width: im.Width, Height: im.Height})
	}
	rec, _ := json.Marshal(resultRecord{Images: res.Images, Link: link})
	if err := s.store.PutRecord(ctx, key, rec); err != nil {
		log.Warn("storing the result record", "err", err)
	}
	res.HeatMaps = heatMapsOf(out.HeatMaps)
	res.Timings = protocol.Timings{
		RunMS:          ms(time.Since(t0)),
		FirstPreviewMS: ms(out.Timings.FirstPreview),
		StepMS:         ms(out.Timings.PerStep()),
	}
	s.metrics.jobSeconds.Observe(time.Since(t0).Seconds())
	s.metrics.stepSeconds.Observe(out.Timings.PerStep().Seconds())
	log.Info("edit done", "took", time.Since(t0).Round(time.Millisecond), "step", out.Timings.PerStep(), "source_cached", out.SourceCached)
	return res, nil
}

// cachedResult returns the stored result of spec when every image of it is
// still stored.
func (c *conn) cachedResult(key string, spec edit.Spec) (*protocol.Result, bool) {
	data, err := c.s.store.Record(context.Background(), key)
	if err != nil {
		return nil, false
	}
	var rec resultRecord
	if json.Unmarshal(data, &rec) != nil || len(rec.Images) == 0 {
		return nil, false
	}
	for _, im := range rec.Images {
		if !c.s.store.HasImage(im.Hash) {
			return nil, false
		}
	}
	return &protocol.Result{Images: rec.Images, Spec: spec, Link: rec.Link, Cached: true}, true
}

// recordKey identifies a resolved spec: the hash of its canonical JSON.
func recordKey(spec edit.Spec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encoding the spec: %w", err)
	}
	return store.Hash(b), nil
}

func rows(r edit.Resolved) []protocol.Row {
	out := []protocol.Row{{Index: 0, Role: protocol.RoleSource, Prompt: r.Source}}
	for i, t := range r.Targets {
		out = append(out, protocol.Row{Index: i + 1, Role: protocol.RoleTarget, Prompt: t})
	}
	return out
}

// specError turns validation problems into one error that lists them all.
func specError(err error) *protocol.Error {
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

func jobError(err error) *protocol.Error {
	switch {
	case errors.Is(err, queue.ErrCancelled):
		return &protocol.Error{Code: protocol.CodeCancelled, Message: "the request was cancelled"}
	case errors.Is(err, queue.ErrTimeout):
		return &protocol.Error{Code: protocol.CodeTimeout, Message: err.Error()}
	case errors.Is(err, queue.ErrClosed):
		return &protocol.Error{Code: protocol.CodeShutdown, Message: err.Error()}
	}
	var probs edit.Problems
	if errors.As(err, &probs) {
		return specError(err)
	}
	switch {
	case errors.Is(err, errPhotoExpired):
		return &protocol.Error{Code: protocol.CodeNotFound, Field: "spec.image", Message: err.Error()}
	case errors.Is(err, photo.ErrCorrupt), errors.Is(err, photo.ErrUnsupported), errors.Is(err, photo.ErrTooLarge):
		return &protocol.Error{Code: protocol.CodeInvalidSpec, Field: "spec.image", Message: err.Error()}
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "the edit failed: " + err.Error()}
}

func rgbToRGBA(rgb []byte) []byte {
	out := make([]byte, len(rgb)/3*4)
	for i, j := 0, 0; i+2 < len(rgb); i, j = i+3, j+4 {
		out[j], out[j+1], out[j+2], out[j+3] = rgb[i], rgb[i+1], rgb[i+2], 255
	}
	return out
}

// heatMapsOf normalizes each token's map to 0–255 for the client, leaving
// out BOS and EOS (they carry most of the attention and mean nothing).
func heatMapsOf(maps []diffusion.HeatMap) []protocol.HeatMap {
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

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
