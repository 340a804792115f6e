package diffusion

import (
	"context"
	"fmt"

	"reword/shared/clip"
)

// TextStates runs only the text encoder on prompts, tokenized and padded
// exactly as a generation encodes them, and returns each prompt's output
// hidden states ([77·hidden] row-major, token by token) and hidden, the
// width of one token's state. Diagnostics compare these states between a
// prompt and an edit of it: what Prompt-to-Prompt injects is only as
// stable as the encoder's states of the words the edit keeps.
func (e *Engine) TextStates(ctx context.Context, prompts []string) (states [][]float32, hidden int, err error) {
	if len(prompts) == 0 {
		return nil, 0, fmt.Errorf("text states: no prompts")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	emb, err := e.encode(ctx, prompts)
	if err != nil {
		return nil, 0, err
	}
	per := clip.ContextLength * e.hidden
	states = make([][]float32, len(prompts))
	for i := range states {
		states[i] = emb[i*per : (i+1)*per : (i+1)*per]
	}
	return states, e.hidden, nil
}
