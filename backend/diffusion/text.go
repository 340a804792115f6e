package diffusion

import (
	"context"
	"fmt"

	"reword/backend/graph"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/shared/clip"
)

// The text encoders: prompts in, the UNet's text conditioning out. A model
// has one (SD 1.x/2.x, the tiny model) or two (SDXL). Every encoder reads
// the same CLIP tokens, padded with its own tokenizer's pad token (EOS for
// SD 1.x, "!" for SD 2.x and SDXL's second): the tokens up to EOS, and so
// what Prompt-to-Prompt aligns, are the same for both. As diffusers'
// StableDiffusionXLPipeline does, the UNet's text states are the encoders'
// states (the manifest names which: SDXL's penultimate layers)
// concatenated token by token on the feature axis, the first encoder's
// first, and the second encoder's pooled projection is the UNet's
// text_embeds.

// textEncoder is one text encoder bound to the engine.
type textEncoder struct {
	spec  model.TextEncoder
	s     *ort.Session
	pad   int32 // the id its prompts are padded with
	width int   // the width of one token's state
	// pooled is the width of its pooled output (the UNet's text_embeds),
	// 0 when it gives none.
	pooled int
	int64  bool // its input_ids are int64 (else int32)
}

// condition is the text conditioning of n rows: every row's token states
// and, for a UNet that takes text_embeds, its pooled embedding.
type condition struct {
	hidden []float32 // [n, 77, Engine.hidden]
	pooled []float32 // [n, Engine.pooled]; nil when the UNet takes none
}

// openTextEncoders opens the manifest's text encoders (with float32
// outputs whatever the export's precision, like every model).
func (e *Engine) openTextEncoders(so ort.Options) error {
	m := e.manifest
	specs := []model.TextEncoder{m.TextEncoder}
	if m.TextEncoder2 != nil {
		specs = append(specs, *m.TextEncoder2)
	}
	for i, spec := range specs {
		what := "text encoder"
		if i > 0 {
			what = "second text encoder"
		}
		pad, err := spec.PadID()
		if err != nil {
			return fmt.Errorf("model %s: %s: %w", m.Dir, what, err)
		}
		s, err := openSession(m, spec.File, what, so, graph.Float32IORewrite)
		if err != nil {
			return err
		}
		e.texts = append(e.texts, &textEncoder{spec: spec, s: s, pad: pad})
	}
	return nil
}

// checkTextEncoders verifies each encoder's input and outputs against the
// manifest and reads their widths: e.hidden, the states the UNet takes, is
// their sum.
func (e *Engine) checkTextEncoders() error {
	e.hidden, e.pooled = 0, 0
	for _, t := range e.texts {
		name := t.s.Name()
		in, ok := t.s.Input(t.spec.Input)
		if !ok || in.DType != ort.Int32 && in.DType != ort.Int64 {
			return fmt.Errorf("text encoder %s: want an int32 or int64 input %q, the model has %v", name, t.spec.Input, t.s.InputInfo())
		}
		t.int64 = in.DType == ort.Int64
		out, ok := t.s.Output(t.spec.Output)
		if !ok || len(out.Shape) != 3 || out.Shape[2] <= 0 || out.DType != ort.Float32 {
			advice := ""
			if e.manifest.TextEncoder2 != nil {
				advice = " (SDXL's UNet reads each encoder's penultimate layer, which Optimum's SDXL export outputs as hidden_states.<n−1>)"
			}
			return fmt.Errorf("text encoder %s: want a float32 output %q of shape [batch, 77, width]%s, the model has %v", name, t.spec.Output, advice, t.s.OutputInfo())
		}
		t.width = int(out.Shape[2])
		e.hidden += t.width
		if t.spec.Pooled == "" {
			continue
		}
		p, ok := t.s.Output(t.spec.Pooled)
		if !ok || len(p.Shape) != 2 || p.Shape[1] <= 0 || p.DType != ort.Float32 {
			return fmt.Errorf("text encoder %s: want a float32 pooled output %q of shape [batch, width], the model has %v", name, t.spec.Pooled, t.s.OutputInfo())
		}
		t.pooled = int(p.Shape[1])
		e.pooled = t.pooled
	}
	return nil
}

// encode returns the text conditioning of prompts, one row each.
func (e *Engine) encode(ctx context.Context, prompts []string) (condition, error) {
	n := len(prompts)
	encs := make([]clip.Encoding, n)
	for i, p := range prompts {
		encs[i] = e.tok.Encode(p)
	}
	c := condition{hidden: make([]float32, n*clip.ContextLength*e.hidden)}
	offset := 0 // where this encoder's features start in a token's state
	for _, t := range e.texts {
		states, pooled, err := t.run(ctx, encs)
		if err != nil {
			return condition{}, err
		}
		for tok := 0; tok < n*clip.ContextLength; tok++ {
			copy(c.hidden[tok*e.hidden+offset:], states[tok*t.width:(tok+1)*t.width])
		}
		offset += t.width
		if pooled != nil {
			c.pooled = pooled
		}
	}
	return c, nil
}

// run encodes the tokenized prompts with this encoder: its states
// [n, 77, width] and its pooled output [n, pooled] (nil when not read).
func (t *textEncoder) run(ctx context.Context, encs []clip.Encoding) (states, pooled []float32, err error) {
	n := len(encs)
	ids32 := make([]int32, 0, n*clip.ContextLength)
	for _, enc := range encs {
		ids32 = append(ids32, enc.PaddedWith(clip.ContextLength, t.pad)...)
	}
	shape := []int64{int64(n), clip.ContextLength}
	var in ort.Value
	if t.int64 {
		ids64 := make([]int64, len(ids32))
		for i, v := range ids32 {
			ids64[i] = int64(v)
		}
		in, err = ort.NewTensor(shape, ids64)
	} else {
		in, err = ort.NewTensor(shape, ids32)
	}
	if err != nil {
		return nil, nil, err
	}
	defer in.Destroy()
	outs, err := t.s.RunContext(ctx, map[string]ort.Value{t.spec.Input: in})
	if err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	defer outs.Destroy()
	// Float32 copies: the outputs are freed when this returns.
	states, gotShape, err := outs.Float32(t.spec.Output)
	if err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	if want := n * clip.ContextLength * t.width; len(states) != want {
		return nil, nil, fmt.Errorf("text encoder %s returned %s of shape %v; want [%d, 77, %d]", t.s.Name(), t.spec.Output, gotShape, n, t.width)
	}
	if t.pooled == 0 {
		return states, nil, nil
	}
	pooled, pShape, err := outs.Float32(t.spec.Pooled)
	if err != nil {
		return nil, nil, fmt.Errorf("text encoder: %w", err)
	}
	if len(pooled) != n*t.pooled {
		return nil, nil, fmt.Errorf("text encoder %s returned %s of shape %v; want [%d, %d]", t.s.Name(), t.spec.Pooled, pShape, n, t.pooled)
	}
	return states, pooled, nil
}

// gather lays out the conditioning of a batch: row b takes row from[b] of
// c, or zeros where from[b] is −1 (SDXL's unconditional rows without a
// negative prompt, model.Manifest.ZeroEmptyNegative).
func (c condition) gather(e *Engine, from []int) condition {
	size := clip.ContextLength * e.hidden
	out := condition{hidden: make([]float32, len(from)*size)}
	if e.pooled > 0 {
		out.pooled = make([]float32, len(from)*e.pooled)
	}
	for b, r := range from {
		if r < 0 {
			continue
		}
		copy(out.hidden[b*size:(b+1)*size], c.hidden[r*size:(r+1)*size])
		if out.pooled != nil {
			copy(out.pooled[b*e.pooled:(b+1)*e.pooled], c.pooled[r*e.pooled:(r+1)*e.pooled])
		}
	}
	return out
}

// keepSourceText copies, for each target t, the source's text state at
// position textFrom[t][n] into the target's position n (the spec's
// keep_source_text). The conditional rows start at batch row cond: the
// source's, then the targets' in order. Pooled embeddings stay each
// prompt's own: they are no token's state.
func (c condition) keepSourceText(e *Engine, cond int, textFrom [][]int) {
	size, h := clip.ContextLength*e.hidden, e.hidden
	src := c.hidden[cond*size : (cond+1)*size]
	for t, from := range textFrom {
		b := cond + 1 + t
		tgt := c.hidden[b*size : (b+1)*size]
		for n, w := range from {
			if w >= 0 {
				copy(tgt[n*h:(n+1)*h], src[w*h:(w+1)*h])
			}
		}
	}
}
