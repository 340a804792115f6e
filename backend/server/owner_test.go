package server

import (
	"fmt"
	"testing"

	"reword/backend/cluster"
	"reword/shared/protocol"
)

// TestJobsBelongToTheirClient: a second client sending a running job's
// request id and spec gets a job of its own — it is queued, not attached
// to the first client's job — and its cancel and its disconnect stop only
// its own; the first client gets its result.
func TestJobsBelongToTheirClient(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	owner := ts.connectFrom(t, "127.0.12.1")
	run := protocol.Run{Spec: spec(4, 40), HeatMaps: true} // heat maps: never answered by the spec's stored result
	owner.send(protocol.TypeRun, "same", run)
	owner.until(protocol.TypeStarted)
	for i, leave := range []string{"cancel", "disconnect"} {
		other := ts.connectFrom(t, fmt.Sprint("127.0.12.", 2+i))
		other.send(protocol.TypeRun, "same", run)
		if m := other.answer("same"); m.Type != protocol.TypeQueued {
			t.Fatalf("another client's copy of a running job: %s %+v; want it queued on its own", m.Type, m.Payload)
		}
		if leave == "cancel" {
			other.send(protocol.TypeCancel, "same", protocol.Cancel{})
			if _, last := other.until(protocol.TypeError); last.Payload.(*protocol.Error).Code != protocol.CodeCancelled {
				t.Fatalf("the other client's cancel: %+v", last.Payload)
			}
		} else {
			other.ws.Close()
		}
	}
	if _, last := owner.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Fatalf("the owner's job after another client cancelled and left its copy: %+v", last.Payload)
	}
	if st := ts.local.Worker.Stats(); st.Cancelled != 0 {
		t.Errorf("worker stats %+v: a job was cancelled on the worker", st)
	}
}
