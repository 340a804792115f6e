//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"reword/shared/edit"
)

// TestNormWindow: the opt-in norm window is a field among the folded
// settings, off until typed; 0.4 puts it into the share link and the run,
// which draws another edit, and another tab opens the link with it.
// Cleared, it leaves the link and the run, which draws the edit without it
// again; the history brings it back and takes it away.
func TestNormWindow(t *testing.T) {
	ctx := redToBlue(t)
	runAndWait(t, ctx, 2)
	own := pixels(t, ctx, 1)

	field, hint := `document.querySelector('#norm')`, `document.querySelector('#norm-hint').textContent`
	clickWhenThere(t, ctx, "#reference-settings summary")
	poll(t, ctx, field+`.offsetHeight > 0 && `+field+`.value === '' && `+field+`.placeholder === 'off'`, 5*time.Second)
	if h := mustEval[string](t, ctx, hint); !strings.HasPrefix(h, "Off by default.") {
		t.Errorf("the hint of an empty norm field: %q", h)
	}
	setField(t, ctx, "norm", "0.4")
	poll(t, ctx, hint+`.startsWith('The edits\' GroupNorms centre on the source\'s means for the first 40\u00a0%')`, 5*time.Second)
	if norm := linkNorm(t, ctx); norm == nil || *norm != edit.Fraction(0.4) {
		t.Errorf("the share link's norm is %v, want 0.4", norm)
	}
	runAndWait(t, ctx, 2)
	if ran := ranSpec(t, ctx); !strings.Contains(ran, `"norm": 0.4`) {
		t.Errorf("the run did not carry norm 0.4: %s", ran)
	}
	if pixels(t, ctx, 1) == own {
		t.Error("the edit with the source's GroupNorm means drew the same target as without them")
	}

	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#norm').value === '0.4' && document.querySelector('#reference-settings').open`, 5*time.Second)

	setField(t, ctx, "norm", "")
	poll(t, ctx, hint+`.startsWith('Off by default.')`, 5*time.Second)
	if norm := linkNorm(t, ctx); norm != nil {
		t.Errorf("the share link still carries norm %v once the field is cleared", *norm)
	}
	runAndWait(t, ctx, 2)
	if ran := ranSpec(t, ctx); strings.Contains(ran, `"norm"`) {
		t.Errorf("the run carried norm once the field was cleared: %s", ran)
	}
	if pixels(t, ctx, 1) != own {
		t.Error("the edit without norm drew another target than at first")
	}

	// Newest first: the run with norm, then back to the one without, whose
	// empty field must not keep the 0.4 shown before.
	clickWhenThere(t, ctx, "#history-1")
	poll(t, ctx, field+`.value === '0.4'`, 5*time.Second)
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, field+`.value === ''`, 5*time.Second)
}

// TestNormWindowOutOfRange: a link whose norm the server would refuse
// opens with the problem in words next to the field, unfolded, and is not
// run.
func TestNormWindowOutOfRange(t *testing.T) {
	seed, steps := uint64(5), 3
	link, err := edit.EncodeLink(edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Steps: &steps,
		Norm: &edit.Window{End: 1.5}})
	must(t, err)
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/e#"+link)
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'refused'`, 20*time.Second)
	if got := fieldErrorText(t, ctx, "norm"); got != "Source's GroupNorm means until must be a fraction of the steps from 0 to 1 (it is 1.5)." {
		t.Errorf("norm 1.5: %q", got)
	}
	if !mustEval[bool](t, ctx, `document.querySelector('#reference-settings').open && document.querySelector('#norm').value === '1.5'`) {
		t.Error("the norm field is folded away or does not show the link's 1.5")
	}
}

// linkNorm is the norm window of the edit link in the page's address.
func linkNorm(t *testing.T, ctx context.Context) *edit.Window {
	t.Helper()
	s, err := edit.DecodeLink(mustEval[string](t, ctx, `location.hash`))
	must(t, err)
	return s.Norm
}

// ranSpec is the spec the server ran, as the page shows it.
func ranSpec(t *testing.T, ctx context.Context) string {
	t.Helper()
	text := mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)
	if !json.Valid([]byte(text)) {
		t.Fatalf("the spec as run is not JSON: %q", text)
	}
	return text
}
