package diffusion

import (
	"context"
	"fmt"

	"reword/shared/clip"
)

// TextStates runs only the text encoders on prompts, tokenized and padded
// exactly as a generation encodes them, and returns each prompt's text
// states as the UNet takes them ([77·hidden] row-major, token by token)
// and hidden, the width of one token's state. On SDXL a token's state is
// both encoders' penultimate states concatenated (the first's, then the
// second's), so a comparison covers both. Diagnostics compare these states
// between a prompt and an edit of it: what Prompt-to-Prompt injects is only
// as stable as the encoder's states of the words the edit keeps.
func (e *Engine) TextStates(ctx context.Context, prompts []string) (states [][]float32, hidden int, err error) {
	c, err := e.encodeAlone(ctx, prompts)
	if err != nil {
		return nil, 0, err
	}
	per := clip.ContextLength * e.hidden
	states = make([][]float32, len(prompts))
	for i := range states {
		states[i] = c.hidden[i*per : (i+1)*per : (i+1)*per]
	}
	return states, e.hidden, nil
}

// PooledStates returns each prompt's pooled embedding, the UNet's
// text_embeds (SDXL: the second encoder's projected pooled state), and its
// width; a model whose UNet takes none gives nil and 0. An edit's target
// row takes its own prompt's (sampling.textStates), so what changes there
// between a prompt and its edit reaches the whole target image, not only
// the attention that Prompt-to-Prompt controls.
func (e *Engine) PooledStates(ctx context.Context, prompts []string) (pooled [][]float32, width int, err error) {
	if e.pooled == 0 {
		return nil, 0, nil
	}
	c, err := e.encodeAlone(ctx, prompts)
	if err != nil {
		return nil, 0, err
	}
	pooled = make([][]float32, len(prompts))
	for i := range pooled {
		pooled[i] = c.pooled[i*e.pooled : (i+1)*e.pooled : (i+1)*e.pooled]
	}
	return pooled, e.pooled, nil
}

// encodeAlone encodes prompts outside a run, one job at a time like runs.
func (e *Engine) encodeAlone(ctx context.Context, prompts []string) (condition, error) {
	if len(prompts) == 0 {
		return condition{}, fmt.Errorf("text states: no prompts")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.encode(ctx, prompts)
}
