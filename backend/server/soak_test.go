package server

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"reword/backend/cluster"
	"reword/shared/protocol"
)

// soakClients is how many clients the soak test runs, each from its own
// address, each sending soakEdits edits.
const (
	soakClients = 50
	soakEdits   = 3
)

// soakRSSLimit is the generous bound on the test process's resident
// memory after the soak (the race detector included): a leak of a
// decoded image, a preview buffer or a socket's queue per job would pass
// it.
const soakRSSLimit = 2 << 30

// terminal records the answers that end requests, per request id.
type terminal struct {
	mu   sync.Mutex
	ends map[string][]*protocol.Message
}

func (tm *terminal) add(m *protocol.Message) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.ends[m.ID] = append(tm.ends[m.ID], m)
}

// soakClient is one client of the soak test. Its behaviour depends on
// its number: plain, bad messages first, a cancel, a disconnect mid-run,
// or the same specs as another client.
type soakClient struct {
	t    *testing.T
	n    int
	c    *client
	sent []string // request ids of runs sent
	ends terminal
	left bool // disconnected on purpose
}

func (sc *soakClient) run(id string, seed uint64) {
	sc.c.send(protocol.TypeRun, id, protocol.Run{Spec: spec(seed, 2)})
	sc.sent = append(sc.sent, id)
}

// read takes messages until every run sent has ended, noting the ends;
// JSON answers without a request id are the bad messages' errors.
func (sc *soakClient) read(badErrors *[]protocol.ErrorCode) {
	sc.t.Helper()
	for {
		done := true
		sc.ends.mu.Lock()
		for _, id := range sc.sent {
			if len(sc.ends.ends[id]) == 0 {
				done = false
			}
		}
		sc.ends.mu.Unlock()
		if done {
			return
		}
		e := sc.c.next()
		if e.msg == nil {
			continue
		}
		switch p := e.msg.Payload.(type) {
		case *protocol.Result:
			sc.ends.add(e.msg)
		case *protocol.Error:
			if e.msg.ID == "" || strings.HasPrefix(e.msg.ID, "bad") {
				*badErrors = append(*badErrors, p.Code)
				continue
			}
			sc.ends.add(e.msg)
		}
	}
}

// TestSoak is the proof under load, bounded in time: 50 clients, each
// from its own address, send 3 edits each through role all's embedded
// NATS, with bad messages, cancels, disconnects and repeated specs mixed
// in. Every edit ends exactly once, with a result whose images are
// stored or a specific error; nothing fails on the worker and nothing is
// delivered twice; the goroutines return to where they were; and the
// process's memory (RSS, reported) stays under a generous bound.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	ts := newEditServerWith(t, cluster.Settings{MaxQueued: 2 * soakClients * soakEdits}, nil, 0, nil)
	baseline := runtime.NumGoroutine()
	clients := make([]*soakClient, soakClients)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var badCodes []protocol.ErrorCode
	for i := range clients {
		sc := &soakClient{t: t, n: i, c: ts.connectFrom(t, fmt.Sprintf("127.0.20.%d", i+1)), ends: terminal{ends: map[string][]*protocol.Message{}}}
		clients[i] = sc
		wg.Add(1)
		go func() {
			defer wg.Done()
			var bad []protocol.ErrorCode
			seed := func(k int) uint64 { return uint64(1000 + 10*sc.n + k) }
			switch sc.n % 5 {
			case 1: // bad messages first, then its edits
				for _, m := range []string{`not json`, `{"v":1,"type":"teleport","id":"bad1","data":{}}`, `{"v":7,"type":"run","id":"bad2","data":{}}`} {
					must(t, sc.c.ws.WriteMessage(websocket.TextMessage, []byte(m)))
				}
				must(t, sc.c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}))
				sc.c.send(protocol.TypeRun, "bad3", protocol.Run{Spec: spec(1, 500)})
			case 4: // the specs of client n-4: cached, or run again
				seed = func(k int) uint64 { return uint64(1000 + 10*(sc.n-4) + k) }
			}
			for k := range soakEdits {
				sc.run(fmt.Sprintf("c%d-e%d", sc.n, k), seed(k))
			}
			switch sc.n % 5 {
			case 2: // cancels its second edit at once
				sc.c.send(protocol.TypeCancel, sc.sent[1], protocol.Cancel{})
			case 3: // leaves once its first edit has started
				sc.c.until(protocol.TypeStarted, protocol.TypeResult, protocol.TypeError)
				sc.c.ws.Close()
				sc.left = true
				return
			}
			sc.read(&bad)
			mu.Lock()
			badCodes = append(badCodes, bad...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Wait until nothing is queued or running, then make sure nothing
	// more arrives: a message sent after every end is answered after any
	// stray second end.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		w, r := ts.local.Gateway.Len()
		if w == 0 && r == 0 && len(ts.local.Worker.Running()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("jobs still queued (%d) or running (%d) 2 minutes after the last answer", w, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	counts := map[string]int{}
	for _, sc := range clients {
		if sc.left {
			continue
		}
		sc.c.send(protocol.TypeCancel, "sync", protocol.Cancel{})
		for {
			e := sc.c.next()
			if e.msg == nil {
				continue
			}
			if e.msg.ID == "sync" {
				break
			}
			if e.msg.Type == protocol.TypeResult || e.msg.Type == protocol.TypeError {
				sc.ends.add(e.msg)
			}
		}
		for _, id := range sc.sent {
			ends := sc.ends.ends[id]
			if len(ends) != 1 {
				t.Errorf("%s ended %d times", id, len(ends))
				continue
			}
			switch p := ends[0].Payload.(type) {
			case *protocol.Result:
				counts["result"]++
				if p.Cached {
					counts["cached"]++
				}
				for _, im := range p.Images {
					if !ts.srv.store.ImageExists(t.Context(), im.Hash) {
						t.Errorf("%s: image %s of its result is not stored", id, im.Hash[:12])
					}
				}
			case *protocol.Error:
				counts[string(p.Code)]++
				if p.Code != protocol.CodeCancelled || sc.n%5 != 2 || id != sc.sent[1] {
					t.Errorf("%s ended with %s: %s", id, p.Code, p.Message)
				}
			}
		}
	}
	wantBad := map[protocol.ErrorCode]int{protocol.CodeBadMessage: 2, protocol.CodeUnknownType: 1, protocol.CodeBadVersion: 1, protocol.CodeInvalidSpec: 1}
	got := map[protocol.ErrorCode]int{}
	for _, c := range badCodes {
		got[c]++
	}
	for code, n := range wantBad {
		if got[code] != n*soakClients/5 {
			t.Errorf("bad messages answered %d times with %s, want %d", got[code], code, n*soakClients/5)
		}
	}
	st := ts.local.Worker.Stats()
	if st.Failed != 0 || st.Redelivered != 0 {
		t.Errorf("worker stats %+v: failures or redeliveries", st)
	}

	// Every socket closed: the goroutines go back to where they were.
	for _, sc := range clients {
		sc.c.ws.Close()
	}
	deadline = time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > baseline+5 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines 30 s after every socket closed, %d before the clients came:\n%s",
				runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	rss := residentBytes(t)
	t.Logf("soak: %d clients × %d edits: %v; worker %+v; RSS %d MiB (bound %d MiB), goroutines %d (baseline %d)",
		soakClients, soakEdits, counts, st, rss>>20, soakRSSLimit>>20, runtime.NumGoroutine(), baseline)
	if rss > soakRSSLimit {
		t.Errorf("RSS %d MiB after the soak, over the %d MiB bound", rss>>20, soakRSSLimit>>20)
	}
}

// residentBytes reads the process's resident set size (Linux).
func residentBytes(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status to read the RSS from: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			must(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
