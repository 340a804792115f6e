package server

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"reword/backend/cluster"
	"reword/shared/protocol"
)

// TestPoisonMessagesFailAlone: messages in the job stream that are not
// jobs — a Reword-Job header too short to be a job id (which once
// panicked the worker, and with it role all's whole server), one of the
// right length that is not hex, none at all, a body that is not a run —
// are terminated by the worker, each once, and the next edit runs.
func TestPoisonMessagesFailAlone(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	nc, err := ts.node.Connect()
	must(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	must(t, err)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "first", protocol.Run{Spec: spec(1, 2)})
	_, last := c.until(protocol.TypeResult, protocol.TypeError)
	res, ok := last.Payload.(*protocol.Result)
	if !ok {
		t.Fatalf("the first edit: %+v", last.Payload)
	}
	subject := "reword.jobs." + cluster.SubjectToken(res.Spec.Model)
	body, err := protocol.Encode(protocol.TypeRun, "poison", protocol.Run{Spec: spec(2, 2)})
	must(t, err)
	for _, m := range []*nats.Msg{
		{Header: nats.Header{"Reword-Job": {"abc"}}, Data: body},
		{Header: nats.Header{"Reword-Job": {strings.Repeat("z", 64)}}, Data: body},
		{Data: body},
		{Header: nats.Header{"Reword-Job": {strings.Repeat("a", 64)}}, Data: []byte("not a run")},
	} {
		m.Subject = subject
		_, err := js.PublishMsg(m)
		must(t, err)
	}
	c.send(protocol.TypeRun, "after", protocol.Run{Spec: spec(3, 2)})
	if _, last := c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Fatalf("the edit after the poison messages: %+v", last.Payload)
	}
	if st := ts.local.Worker.Stats(); st.Failed != 4 || st.Completed != 2 || st.Redelivered != 0 {
		t.Errorf("worker stats: %+v; want the 4 poison messages failed once each, 2 edits completed", st)
	}
}
