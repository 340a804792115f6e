package diffusion

import (
	"slices"

	"reword/shared/clip"
)

// The attention maps of a run: every maps output of the UNet is written
// by every call; those that local blend or the heat maps read are summed
// over the steps, and the heat maps are their per-token averages.

// mapsRun holds one maps output's values during a run and, when something
// reads them, their running sum over the steps.
type mapsRun struct {
	mapsOutput
	values []float32 // [rows, w·h, 77], written by every UNet call
	sums   []float32 // nil: not summed
}

func (e *Engine) mapsOutputs(rows int) []*mapsRun {
	out := make([]*mapsRun, len(e.maps))
	for i, o := range e.maps {
		out[i] = &mapsRun{mapsOutput: o, values: make([]float32, rows*o.w*o.h*clip.ContextLength)}
	}
	return out
}

func (r *mapsRun) sum() {
	if r.sums == nil {
		r.sums = make([]float32, len(r.values))
	}
}

func (r *mapsRun) accumulate() {
	if r.sums == nil {
		return
	}
	for k, v := range r.values {
		r.sums[k] += v
	}
}

// heatMapOutputs lists the maps outputs whose heat maps a run returns.
func (e *Engine) heatMapOutputs(opts RunOptions) []int {
	switch {
	case opts.AllResolutions:
		all := make([]int, len(e.maps))
		for i := range all {
			all[i] = i
		}
		return all
	case opts.HeatMaps:
		return []int{e.heatOut}
	}
	return nil
}

// heatMaps turns one output's summed maps into per-token averages over the
// steps.
func (e *Engine) heatMaps(prompts []string, o *mapsRun, steps int) []HeatMap {
	n := o.w * o.h
	var out []HeatMap
	for r, p := range prompts {
		enc := e.tok.Encode(p)
		count := min(len(enc.IDs), clip.ContextLength)
		hm := HeatMap{Row: r, Prompt: p, Tokens: slices.Clone(enc.Tokens[:count]), Stride: o.stride, Width: o.w, Height: o.h}
		block := o.sums[r*n*clip.ContextLength : (r+1)*n*clip.ContextLength]
		for k := 0; k < count; k++ {
			m := make([]float32, n)
			for q := 0; q < n; q++ {
				m[q] = block[q*clip.ContextLength+k] / float32(steps)
			}
			hm.Maps = append(hm.Maps, m)
		}
		out = append(out, hm)
	}
	return out
}
