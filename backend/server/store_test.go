package server

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"reword/backend/cluster"
	"reword/shared/protocol"
)

// noisePNG is a PNG of w×h random pixels: it does not compress, so its
// size is about 4·w·h bytes.
func noisePNG(t *testing.T, seed uint64, w, h int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(r.Uint32())
	}
	var b bytes.Buffer
	must(t, png.Encode(&b, img))
	return b.Bytes()
}

func (ts *testServer) upload(t *testing.T, data []byte) string {
	t.Helper()
	resp, err := http.Post(ts.URL+"/api/images", "image/png", bytes.NewReader(data))
	must(t, err)
	defer resp.Body.Close()
	var up struct{ Hash, Error string }
	json.NewDecoder(resp.Body).Decode(&up)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, up.Error)
	}
	return up.Hash
}

// TestQueuedPhotoIsNotEvicted: a photo whose edit waits in the queue is
// leased: uploads that fill the store far past its cap evict other photos
// but not that one, and the edit runs on it. Once the edit has ended, the
// photo can be evicted like any other.
func TestQueuedPhotoIsNotEvicted(t *testing.T) {
	const photoBytes = 4 * 80 * 64 // a noisePNG of 80×64, about
	ts := newEditServerWith(t, cluster.Settings{}, nil, 6*photoBytes, func(c *Config) { c.UploadBurst = 100 })
	photo := ts.upload(t, noisePNG(t, 1, 80, 64))
	busy := ts.connectFrom(t, "127.0.11.1")
	busy.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(1, 150)})
	busy.until(protocol.TypeStarted)
	c := ts.connectFrom(t, "127.0.11.2")
	s := spec(2, 2)
	s.Image = photo
	c.send(protocol.TypeRun, "photo", protocol.Run{Spec: s})
	c.until(protocol.TypeQueued)
	for i := range 12 {
		ts.upload(t, noisePNG(t, uint64(100+i), 80, 64))
	}
	if images, _, bytes := ts.srv.store.Usage(); bytes > 6*photoBytes+6*1024 {
		t.Fatalf("the store holds %d images, %d bytes: over its cap", images, bytes)
	}
	busy.send(protocol.TypeCancel, "long", protocol.Cancel{})
	if _, last := c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Fatalf("the queued photo edit after a dozen uploads: %+v", last.Payload)
	}
	// Released with the job's end (just after its result is sent).
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ts.srv.store.HasImage(photo); i++ {
		if time.Now().After(deadline) {
			t.Fatal("the photo stayed leased after its edit ended")
		}
		ts.upload(t, noisePNG(t, uint64(200+i), 80, 64))
	}
}
