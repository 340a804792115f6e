package cluster

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"reword/shared/protocol"
)

// TestStoredResultNeedsItsImages: a job whose result record is stored
// but one of whose images is gone (deleted by another process's
// eviction, or a bucket lifecycle rule) is not answered from the store
// with a dead link: it runs again and stores its images again.
func TestStoredResultNeedsItsImages(t *testing.T) {
	c, g, run, j, first := finishedJob(t)
	gone := first.result.Images[1].Hash
	must(t, os.Remove(filepath.Join(c.storeDir, "images", gone)))

	second := newOutcome()
	j, err := g.submit(context.Background(), c.model, "c", "again", run, second.events())
	must(t, err)
	must(t, waitJob(t, j, time.Minute))
	if second.result == nil || second.result.Cached {
		t.Fatalf("answered from a stored result whose image is gone: %+v", second.result)
	}
	if st := c.totals(); st.Completed != 2 || st.FromStore != 0 {
		t.Errorf("workers: %+v; want the job run twice", st)
	}
	if _, err := os.Stat(filepath.Join(c.storeDir, "images", gone)); err != nil {
		t.Errorf("the image was not stored again: %v", err)
	}
}

// TestStoreFailureIsNotASpentID: a job sent again after its run left the
// stream, while the store cannot be read, is told that the server failed
// (retry), not that its id was spent on a run that failed or was
// cancelled: whether that run finished is unknown.
func TestStoreFailureIsNotASpentID(t *testing.T) {
	c, g, run, j, _ := finishedJob(t)
	// A link to itself where the result record was: reading it fails
	// (too many levels of links), and not with "not found".
	record := filepath.Join(c.storeDir, "records", jobRecord(j.ID))
	must(t, os.Remove(record))
	must(t, os.Symlink(filepath.Base(record), record))

	j, err := g.submit(context.Background(), c.model, "c", "again", run, newOutcome().events())
	must(t, err)
	err = waitJob(t, j, time.Minute)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeInternal || !strings.Contains(pe.Message, "looking up the result of the earlier run") {
		t.Fatalf("the job sent again while its record cannot be read ended with %v; want an internal error about the lookup", err)
	}
}

// finishedJob runs one job to its end on a cluster of its own and waits
// until its message has left the stream, so that the same job sent again
// finds only what the store kept of it.
func finishedJob(t *testing.T) (*testCluster, *Gateway, protocol.Run, *Job, *outcome) {
	t.Helper()
	c := newTestCluster(t, 1, 1, 1, Settings{})
	g := c.gateways[0]
	run := c.resolved(g, runOf(8, 2))
	o := newOutcome()
	j, err := g.submit(context.Background(), c.model, "c", "again", run, o.events())
	must(t, err)
	must(t, waitJob(t, j, time.Minute))
	waitStreamEmpty(t, g)
	return c, g, run, j, o
}

// waitStreamEmpty waits for the stream to hold no message. A job's
// message leaves the stream when the worker acks it, just after the
// result: until then the same job sent again attaches to it.
func waitStreamEmpty(t *testing.T, g *Gateway) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := g.stream.Info(context.Background())
		must(t, err)
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the finished job's message stayed in the stream")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
