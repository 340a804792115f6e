package diffusion

import (
	"reword/backend/graph"
	"reword/shared/align"
)

// controlSchedule sets the attention controls of each step: an edit's
// align.Controller writes them into the UNet call's control inputs; a run
// without one (a generation, the baseline) keeps the no-op controls of
// graph.NoOpControls, which leave attention untouched.
type controlSchedule struct {
	ctrl *align.Controller
	ctl  graph.Controls
}

// at sets the controls of step i.
func (c controlSchedule) at(i int) error {
	if c.ctrl == nil {
		return nil
	}
	return c.ctrl.Step(i, c.ctl.CrossW, c.ctl.CrossC, c.ctl.SelfW, c.ctl.NormW)
}
