package diffusion

import (
	"slices"
	"time"

	"reword/backend/diffusion/preview"
)

// previews streams a run's progressive previews through a pump, which
// never blocks the sampling loop, and times the first one. Without a
// listener it does nothing, not even the projection.
type previews struct {
	pump    *preview.Pump // nil: nobody listens
	project preview.Projector
	h, w    int // latent grid
	start   time.Time
	first   time.Duration // to the first preview offered, from start
}

func newPreviews(e *Engine, onPreview func(Preview), start time.Time) *previews {
	p := &previews{project: e.project, h: e.manifest.Latent.Height, w: e.manifest.Latent.Width, start: start}
	if onPreview != nil {
		p.pump = preview.NewPump(onPreview)
	}
	return p
}

// step offers the previews after step of total: each stepped row's
// predicted clean latent (denoised, rows of h·w·channels), projected to
// RGB at latent resolution. firstRow is the row index of the first
// stepped row.
func (p *previews) step(step, total int, denoised []float32, firstRow int) error {
	if p.pump == nil {
		return nil
	}
	rowSize := len(p.project.Matrix) * p.h * p.w
	for r := 0; r*rowSize < len(denoised); r++ {
		img := make([]byte, 3*p.h*p.w)
		if err := p.project.Render(denoised[r*rowSize:(r+1)*rowSize], p.h, p.w, img); err != nil {
			return err
		}
		p.pump.Offer(Preview{Row: r + firstRow, Step: step, Total: total, Width: p.w, Height: p.h, RGB: img})
	}
	p.offered()
	return nil
}

// final offers the decoded images of every row.
func (p *previews) final(images [][]byte, width, height, total int) {
	if p.pump == nil {
		return
	}
	for r, rgb := range images {
		p.pump.Offer(Preview{Row: r, Step: total, Total: total, Width: width, Height: height, RGB: slices.Clone(rgb), Final: true})
	}
	p.offered()
}

func (p *previews) offered() {
	if p.first == 0 {
		p.first = time.Since(p.start)
	}
}

// close delivers what is pending and stops the pump.
func (p *previews) close() {
	if p.pump != nil {
		p.pump.Close()
	}
}
