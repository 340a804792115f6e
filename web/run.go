package web

import (
	"fmt"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// runPhase is where one run request stands.
type runPhase string

const (
	phaseSent      runPhase = "sent"      // waiting for the server's first answer
	phaseQueued    runPhase = "queued"    // behind other requests
	phaseRunning   runPhase = "running"   // a worker is denoising
	phaseDone      runPhase = "done"      // final images arrived
	phaseFailed    runPhase = "failed"    // the server refused or failed it
	phaseCancelled runPhase = "cancelled" // the user stopped it
)

// rowView is one image of a run as the results show it.
type rowView struct {
	Index  int
	Role   string
	Prompt string
	// Step and Total count the denoising steps whose preview has arrived.
	Step, Total int
	// Image is the final image, once the result arrived.
	Image *protocol.Image
}

// runState follows one run request through the server's answers. It holds
// no browser objects, so its bookkeeping is tested natively; the editor
// draws previews on the canvases itself.
type runState struct {
	ID    string
	Spec  edit.Spec // as sent
	Phase runPhase
	// Position is the queue position while queued (0 = next).
	Position int
	Rows     []rowView
	// Step and Total are the latest progress of the whole batch.
	Step, Total int
	Result      *protocol.Result
	Err         *protocol.Error
}

// active reports whether the run still waits for answers.
func (r *runState) active() bool {
	return r != nil && (r.Phase == phaseSent || r.Phase == phaseQueued || r.Phase == phaseRunning)
}

// apply updates the run with a server message that carries its id. It
// returns false for messages about other requests, and for messages that
// arrive after the run ended: a finished run's outcome stands (a Cancel
// that crossed the Result is answered not_found for the finished id).
func (r *runState) apply(m *protocol.Message) bool {
	if !r.active() || m.ID != r.ID {
		return false
	}
	switch p := m.Payload.(type) {
	case *protocol.Queued:
		r.Phase, r.Position = phaseQueued, p.Position
	case *protocol.Started:
		r.Phase, r.Total = phaseRunning, p.Steps
		r.Rows = make([]rowView, len(p.Rows))
		for i, row := range p.Rows {
			r.Rows[i] = rowView{Index: row.Index, Role: row.Role, Prompt: row.Prompt, Total: p.Steps}
		}
	case *protocol.Progress:
		r.Step, r.Total = p.Step, p.Total
	case *protocol.Result:
		r.Phase, r.Result, r.Step = phaseDone, p, r.Total
		for _, img := range p.Images {
			if row := r.row(img.Row); row != nil {
				im := img
				row.Image = &im
				row.Step = row.Total
			}
		}
	case *protocol.Error:
		r.Err = p
		r.Phase = phaseFailed
		if p.Code == protocol.CodeCancelled {
			r.Phase = phaseCancelled
		}
	default:
		return false
	}
	return true
}

// preview records a preview frame's step; it returns false for frames of
// other requests, of a run that ended (one still in flight when the run
// was cancelled or finished) or of rows the run does not have.
func (r *runState) preview(p protocol.Preview) bool {
	if !r.active() || p.ID != r.ID {
		return false
	}
	row := r.row(p.Row)
	if row == nil {
		return false
	}
	row.Step, row.Total = p.Step, p.Total
	return true
}

func (r *runState) row(index int) *rowView {
	for i := range r.Rows {
		if r.Rows[i].Index == index {
			return &r.Rows[i]
		}
	}
	return nil
}

// statusText says in words where the run stands.
func (r *runState) statusText() string {
	switch r.Phase {
	case phaseSent:
		return "Sent…"
	case phaseQueued:
		if r.Position == 0 {
			return "Queued: next in line"
		}
		return fmt.Sprintf("Queued: %d ahead", r.Position)
	case phaseRunning:
		return fmt.Sprintf("Step %d of %d", r.Step, r.Total)
	case phaseDone:
		if r.Result != nil && r.Result.Cached {
			return "Done (from cache)"
		}
		if r.Result != nil {
			return fmt.Sprintf("Done in %.1f s", r.Result.Timings.RunMS/1000)
		}
		return "Done"
	case phaseCancelled:
		return "Cancelled"
	case phaseFailed:
		switch {
		case r.Err != nil && r.Err.Code == protocol.CodeInvalidSpec && len(r.Err.Problems) > 0:
			// The server's check in the form's words; the fields show the rest.
			p := r.Err.Problems[0]
			field, ok := specFieldKey(p.Field)
			if !ok {
				field = p.Field
			}
			return "Not run: " + sentence(fieldLabel(field, r.Spec.Image != ""), p.Message)
		case r.Err != nil:
			return "Failed: " + r.Err.Message
		}
		return "Failed"
	}
	return ""
}
