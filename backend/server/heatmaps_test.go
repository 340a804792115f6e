package server

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// TestLargeHeatMapResultReachesTheClient runs an edit of long prompts with
// heat maps through a cluster worker and the gateway: its result is larger
// than a client message may be (16×16 maps of five rows of 56 tokens), and
// must still reach the client, with every map at the model's 16×16 grid.
func TestLargeHeatMapResultReachesTheClient(t *testing.T) {
	var logs syncBuffer
	env := newGatewayServerLogging(t, &logs)
	env.startWorker(t)
	c := env.connect(t)
	long := strings.TrimSpace(strings.Repeat("a big red circle on the left ", 8))
	seed, steps := uint64(2), 2
	s := edit.Spec{Source: long, Seed: &seed, Steps: &steps}
	for _, colour := range []string{"blue", "green", "yellow", "white"} {
		s.Targets = append(s.Targets, strings.Replace(long, "red", colour, 1))
	}
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: s, HeatMaps: true})
	_, last := c.until(protocol.TypeResult, protocol.TypeError)
	res, ok := last.Payload.(*protocol.Result)
	if !ok {
		t.Fatalf("the run ended with %s %+v", last.Type, last.Payload)
	}
	size := 0
	rows := map[int]int{}
	for _, hm := range res.HeatMaps {
		if hm.Width != 16 || hm.Height != 16 || len(hm.Values) != 256 {
			t.Fatalf("heat map of row %d token %d is %dx%d with %d values, want 16x16", hm.Row, hm.Token, hm.Width, hm.Height, len(hm.Values))
		}
		rows[hm.Row]++
		size += len(hm.Values)
	}
	if len(rows) != 5 || rows[0] != 56 {
		t.Errorf("heat maps per row %v, want 5 rows of 56 word tokens", rows)
	}
	if b, err := protocol.Encode(protocol.TypeResult, "long", res); err != nil || len(b) <= protocol.MaxMessageBytes {
		t.Errorf("the result is %d bytes (%v); the test needs one over the client-message limit %d", len(b), err, protocol.MaxMessageBytes)
	}
	// The gateway took the worker's result event itself: had it refused
	// the message as too large, the job would still end, from the stored
	// result, but only after logging the refusal.
	if strings.Contains(logs.String(), "not a protocol message") {
		t.Errorf("the gateway refused a job event:\n%s", logs.String())
	}
}

// syncBuffer is a bytes.Buffer that a logger may write from any goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
