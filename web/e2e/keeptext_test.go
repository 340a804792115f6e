//go:build e2e

package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// TestKeepSourceText: the opt-in that keeps the source's text states for
// the unchanged words is a checkbox among the folded settings; ticked, the
// run carries keep_source_text and draws another edit; the share link and
// the history bring it back.
func TestKeepSourceText(t *testing.T) {
	ctx := redToBlue(t)
	setField(t, ctx, "cross", "0") // the text states alone steer the target
	runAndWait(t, ctx, 2)
	own := pixels(t, ctx, 1)

	box := `document.querySelector('#keep-source-text')`
	clickWhenThere(t, ctx, "#reference-settings summary")
	poll(t, ctx, box+`.offsetHeight > 0 && !`+box+`.checked`, 5*time.Second)
	clickWhenThere(t, ctx, "#keep-source-text")
	poll(t, ctx, box+`.checked`, 5*time.Second)
	runAndWait(t, ctx, 2)
	var ran struct {
		KeepSourceText bool `json:"keep_source_text"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if !ran.KeepSourceText {
		t.Error("the run did not carry keep_source_text")
	}
	if pixels(t, ctx, 1) == own {
		t.Error("the edit with the source's text states drew the same target as without them")
	}

	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#keep-source-text').checked && document.querySelector('#reference-settings').open`, 5*time.Second)

	clickWhenThere(t, ctx, "#keep-source-text")
	poll(t, ctx, `!`+box+`.checked`, 5*time.Second)
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, box+`.checked`, 5*time.Second)
}
