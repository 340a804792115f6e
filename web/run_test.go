package web

import (
	"testing"

	"reword/shared/protocol"
)

func msg(id string, p any) *protocol.Message {
	return &protocol.Message{Envelope: protocol.Envelope{ID: id}, Payload: p}
}

func TestRunStateFollowsARequest(t *testing.T) {
	r := &runState{ID: "r1", Phase: phaseSent}
	if r.apply(msg("other", &protocol.Queued{Position: 3})) {
		t.Fatal("a message for another request was applied")
	}
	r.apply(msg("r1", &protocol.Queued{Position: 2}))
	if r.Phase != phaseQueued || r.statusText() != "Queued: 2 ahead" {
		t.Errorf("queued: %s %q", r.Phase, r.statusText())
	}
	r.apply(msg("r1", &protocol.Started{Steps: 10, Rows: []protocol.Row{
		{Index: 0, Role: protocol.RoleSource, Prompt: "a red circle"},
		{Index: 1, Role: protocol.RoleTarget, Prompt: "a blue circle"},
	}}))
	if !r.active() || len(r.Rows) != 2 || r.Rows[1].Prompt != "a blue circle" {
		t.Fatalf("started: %+v", r)
	}
	if !r.preview(protocol.Preview{ID: "r1", Row: 1, Step: 4, Total: 10}) || r.Rows[1].Step != 4 || r.Rows[0].Step != 0 {
		t.Errorf("preview did not reach row 1 only: %+v", r.Rows)
	}
	if r.preview(protocol.Preview{ID: "r1", Row: 7, Step: 4, Total: 10}) || r.preview(protocol.Preview{ID: "r0", Row: 0}) {
		t.Error("a preview of an unknown row or request was accepted")
	}
	r.apply(msg("r1", &protocol.Progress{Step: 5, Total: 10}))
	if r.statusText() != "Step 5 of 10" {
		t.Errorf("progress: %q", r.statusText())
	}
	r.apply(msg("r1", &protocol.Result{Images: []protocol.Image{{Row: 0, Hash: "aa"}, {Row: 1, Hash: "bb"}}, Timings: protocol.Timings{RunMS: 1500}}))
	if r.active() || r.Phase != phaseDone || r.Rows[1].Image == nil || r.Rows[1].Image.Hash != "bb" || r.Rows[1].Step != 10 {
		t.Errorf("result: %+v", r.Rows)
	}
	if r.statusText() != "Done in 1.5 s" {
		t.Errorf("done: %q", r.statusText())
	}
}

func TestRunStateErrors(t *testing.T) {
	r := &runState{ID: "r2", Phase: phaseSent}
	r.apply(msg("r2", &protocol.Error{Code: protocol.CodeCancelled, Message: "cancelled"}))
	if r.Phase != phaseCancelled || r.active() {
		t.Errorf("cancel: %s", r.Phase)
	}
	r = &runState{ID: "r3", Phase: phaseSent}
	r.apply(msg("r3", &protocol.Error{Code: protocol.CodeInvalidSpec, Message: "steps must be 1–150", Field: "data.spec.steps"}))
	if r.Phase != phaseFailed || r.statusText() != "Failed: steps must be 1–150" {
		t.Errorf("invalid: %s %q", r.Phase, r.statusText())
	}
}

// A run the server refuses says why in the form's words, not the spec's
// field paths.
func TestRunStateRefusedInWords(t *testing.T) {
	r := &runState{ID: "r4", Phase: phaseSent}
	r.apply(msg("r4", &protocol.Error{Code: protocol.CodeInvalidSpec, Message: "invalid edit spec: targets[0] is empty: write a prompt",
		Field: "spec.targets[0]", Problems: []protocol.Problem{{Field: "spec.targets[0]", Message: "is empty: write a prompt"}}}))
	if got := r.statusText(); got != "Not run: Edit 1 is empty: write a prompt." {
		t.Errorf("status %q", got)
	}
}

// A run that ended keeps its outcome: a Cancel that crossed the Result is
// answered not_found for the finished id, and a preview frame still in
// flight must not move its progress back.
func TestRunStateIgnoresMessagesAfterItEnded(t *testing.T) {
	r := &runState{ID: "r5", Phase: phaseSent}
	r.apply(msg("r5", &protocol.Started{Steps: 10, Rows: []protocol.Row{{Index: 0, Role: protocol.RoleSource, Prompt: "a red circle"}}}))
	r.apply(msg("r5", &protocol.Result{Images: []protocol.Image{{Row: 0, Hash: "aa"}}}))
	if r.apply(msg("r5", &protocol.Error{Code: protocol.CodeNotFound, Field: "id", Message: "no queued or running request has this id"})) {
		t.Error("an error after the result was applied")
	}
	if r.preview(protocol.Preview{ID: "r5", Row: 0, Step: 3, Total: 10}) {
		t.Error("a preview after the result was applied")
	}
	if r.Phase != phaseDone || r.Err != nil || r.Rows[0].Step != 10 {
		t.Errorf("the finished run changed: %s %v step %d", r.Phase, r.Err, r.Rows[0].Step)
	}

	r = &runState{ID: "r6", Phase: phaseSent}
	r.apply(msg("r6", &protocol.Error{Code: protocol.CodeCancelled, Message: "cancelled"}))
	if r.apply(msg("r6", &protocol.Result{})) || r.Phase != phaseCancelled {
		t.Errorf("a result after the cancel was applied: %s", r.Phase)
	}
}
