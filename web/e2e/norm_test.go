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

// TestNormWindow: the norm window is a field among the folded settings
// whose empty value is the model's default (the tiny model's 0.4), which
// the first run takes; 0 turns it off, in the share link and the run,
// which draws another edit, and another tab opens the link with it.
// Cleared, the field leaves the link and the run takes the default again,
// drawing the first edit; the history brings 0 back, and then the 0.4
// the last run ran with.
func TestNormWindow(t *testing.T) {
	ctx := redToBlue(t)
	runAndWait(t, ctx, 2)
	if ran := ranNorm(t, ctx); ran != 0.4 {
		t.Errorf("the first run ran with norm %v, want the model's 0.4", ran)
	}
	withDefault := pixels(t, ctx, 1)

	field, hint := `document.querySelector('#norm')`, `document.querySelector('#norm-hint').textContent`
	clickWhenThere(t, ctx, "#reference-settings summary")
	poll(t, ctx, field+`.offsetHeight > 0 && `+field+`.value === '' && `+field+`.placeholder === '0.4 (default)'`, 5*time.Second)
	if h := mustEval[string](t, ctx, hint); !strings.HasPrefix(h, "By default the edits' GroupNorms centre on the source's means for the first 40\u00a0%") {
		t.Errorf("the hint of an empty norm field: %q", h)
	}
	setField(t, ctx, "norm", "0")
	poll(t, ctx, hint+` === 'Off: this window holds no steps.'`, 5*time.Second)
	if norm := linkNorm(t, ctx); norm == nil || *norm != (edit.Window{}) {
		t.Errorf("the share link's norm is %v, want an explicit 0", norm)
	}
	runAndWait(t, ctx, 2)
	if ran := ranNorm(t, ctx); ran != 0 {
		t.Errorf("the run ran with norm %v, want 0", ran)
	}
	if pixels(t, ctx, 1) == withDefault {
		t.Error("the edit without the source's GroupNorm means drew the same target as with them")
	}

	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#norm').value === '0' && document.querySelector('#reference-settings').open`, 5*time.Second)

	setField(t, ctx, "norm", "")
	poll(t, ctx, hint+`.startsWith('By default')`, 5*time.Second)
	if norm := linkNorm(t, ctx); norm != nil {
		t.Errorf("the share link still carries norm %v once the field is cleared", *norm)
	}
	runAndWait(t, ctx, 2)
	if ran := ranNorm(t, ctx); ran != 0.4 {
		t.Errorf("the run ran with norm %v once the field was cleared, want the default 0.4", ran)
	}
	if pixels(t, ctx, 1) != withDefault {
		t.Error("the edit at the default drew another target than at first")
	}

	// Newest first: the run with norm 0, then back to the one at the
	// default, which the history restores as it ran (every setting
	// filled in, as the server echoed it): 0.4.
	clickWhenThere(t, ctx, "#history-1")
	poll(t, ctx, field+`.value === '0'`, 5*time.Second)
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, field+`.value === '0.4'`, 5*time.Second)
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

// ranNorm is the norm window's end in the spec the server ran, which
// always states it.
func ranNorm(t *testing.T, ctx context.Context) float64 {
	t.Helper()
	var ran struct {
		Norm *float64 `json:"norm"`
	}
	must(t, json.Unmarshal([]byte(ranSpec(t, ctx)), &ran))
	if ran.Norm == nil {
		t.Fatal("the spec as run does not state its norm window")
	}
	return *ran.Norm
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
