package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"reword/shared/protocol"
)

// TestSubmitWithEventsAlreadyFlowing attaches to a job whose events are
// already being published (a job in flight, sent again after a
// reconnect): the first event arrives while Submit is still setting the
// job up. The job must end cleanly and leave nothing in the gateway's
// table of waiting jobs (and, under -race, not race on the job's fields).
func TestSubmitWithEventsAlreadyFlowing(t *testing.T) {
	c := newTestCluster(t, 1, 1, 0, Settings{})
	g := c.gateways[0]
	run := runOf(1, 2)
	jobID, err := JobID("c", "inflight", run)
	must(t, err)
	res, err := protocol.Encode(protocol.TypeResult, "inflight", protocol.Result{})
	must(t, err)

	pub := c.connect()
	defer pub.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pub.Publish(eventSubject(jobID), res)
			time.Sleep(100 * time.Microsecond)
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	j, err := g.submit(context.Background(), "m", "c", "inflight", run, Events{})
	must(t, err)
	if err := waitJob(t, j, 10*time.Second); err != nil {
		t.Fatalf("job ended with %v", err)
	}
	g.mu.Lock()
	left := len(g.bySeq)
	g.mu.Unlock()
	if left != 0 {
		t.Errorf("%d ended jobs left in the gateway's table", left)
	}
}
