package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPutGetEvictAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, 250)
	if err != nil {
		t.Fatal(err)
	}
	var hashes []string
	for i := range 3 {
		data := bytes.Repeat([]byte{byte(i)}, 100)
		h, err := s.PutImage(ctx, data, "image/png")
		if err != nil {
			t.Fatal(err)
		}
		if h != Hash(data) {
			t.Fatalf("hash %s is not the content's", h)
		}
		hashes = append(hashes, h)
		if i == 1 {
			// Touch the first image so the second becomes the oldest.
			if _, _, err := s.Image(ctx, hashes[0]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _, b := s.Usage(); n != 2 || b != 200 {
		t.Fatalf("usage %d images %d bytes, want 2 and 200", n, b)
	}
	if _, _, err := s.Image(ctx, hashes[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("least recently used image not evicted: %v", err)
	}
	data, typ, err := s.Image(ctx, hashes[0])
	if err != nil || typ != "image/png" || !bytes.Equal(data, bytes.Repeat([]byte{0}, 100)) {
		t.Errorf("image 0: %v %q", err, typ)
	}
	key := Hash([]byte("spec"))
	if err := s.PutRecord(ctx, key, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := Open(ctx, dir, 250)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !s2.HasImage(hashes[0]) || !s2.HasImage(hashes[2]) || s2.HasImage(hashes[1]) {
		t.Error("reopened store lost or resurrected images")
	}
	if rec, err := s2.Record(ctx, key); err != nil || string(rec) != `{"a":1}` {
		t.Errorf("record after reopen: %q %v", rec, err)
	}
}

func TestRejectsBadKeysAndOversize(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "mem://", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, h := range []string{"", "../etc/passwd", "ABCDEF" + fmt.Sprint(make([]byte, 58)), Hash(nil)[:63] + "G"} {
		if _, _, err := s.Image(ctx, h); !errors.Is(err, ErrNotFound) {
			t.Errorf("Image(%q) = %v", h, err)
		}
	}
	if err := s.PutRecord(ctx, "../x", nil); err == nil {
		t.Error("record with a path key accepted")
	}
	if _, err := s.PutImage(ctx, make([]byte, 11), "image/png"); err == nil {
		t.Error("image over the whole cap accepted")
	}
	if _, err := Open(ctx, t.TempDir(), -1); err == nil {
		t.Error("negative cap accepted")
	}
}

// TestSharedBucket: two stores on one folder, as a cluster's gateway and
// worker share a bucket: what one writes after the other opened is found.
func TestSharedBucket(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	reader, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	writer, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	data := []byte("written by a worker")
	h, err := writer.PutImage(ctx, data, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	if !reader.HasImage(h) {
		t.Fatal("an image another store wrote is not found")
	}
	got, _, err := reader.Image(ctx, h)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading it back: %q, %v", got, err)
	}
	if n, _, b := reader.Usage(); n != 1 || b != int64(len(data)) {
		t.Errorf("reader usage %d images %d bytes after adopting one", n, b)
	}
	if reader.HasImage(Hash([]byte("never written"))) {
		t.Error("a never written image is reported stored")
	}
}

func TestImageDeletedBehindTheStoreIsForgotten(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h, err := a.PutImage(ctx, []byte("png bytes"), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	// Another process sharing the bucket evicts it.
	b, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.bucket.Delete(ctx, imagePrefix+h); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Image(ctx, h); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Image = %v, want ErrNotFound", err)
	}
	if a.HasImage(h) {
		t.Error("the store still claims an image whose blob is gone")
	}
	if n, _, bytes := a.Usage(); n != 0 || bytes != 0 {
		t.Errorf("usage %d images %d bytes after forgetting", n, bytes)
	}
}

// TestRecordsCountAgainstTheCap: result records (which carry heat maps)
// are bounded in bytes with the images, in one least-recently-used
// order, and in number by MaxEntries; a restart re-indexes them.
func TestRecordsCountAgainstTheCap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for i := range 5 {
		k := Hash([]byte{byte(i)})
		if err := s.PutRecord(ctx, k, bytes.Repeat([]byte("x"), 300)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		if i == 2 {
			if _, err := s.Record(ctx, keys[0]); err != nil { // keys[1] is now the oldest
				t.Fatal(err)
			}
		}
	}
	if _, records, b := s.Usage(); records != 3 || b != 900 {
		t.Errorf("%d records, %d bytes; want 3 and 900 under a 1000-byte cap", records, b)
	}
	for i, k := range keys {
		_, err := s.Record(ctx, k)
		if kept := err == nil; kept != (i == 0 || i >= 3) {
			t.Errorf("record %d: %v", i, err)
		}
	}
	if got := bucketBytes(t, dir); got > 1000 {
		t.Errorf("the folder holds %d bytes of records and images, over the 1000-byte cap", got)
	}
	s.maxEntries = 2
	if err := s.PutRecord(ctx, Hash([]byte("small")), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if images, records, _ := s.Usage(); images+records != 2 {
		t.Errorf("%d entries kept; MaxEntries is 2", images+records)
	}
	s.Close()
	s2, err := Open(ctx, dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, records, _ := s2.Usage(); records != 2 {
		t.Errorf("reopened store indexes %d records, want 2", records)
	}
}

// bucketBytes adds up the images and records in a store folder.
func bucketBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	for _, sub := range []string{"images", "records"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".attrs") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			total += info.Size()
		}
	}
	return total
}

// TestLeasedImagesAreNotEvicted: an image leased in this process stays
// however much is written after it, and goes once released; a lease on
// an image that is not stored fails.
func TestLeasedImagesAreNotEvicted(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir(), 300)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	photo, err := s.PutImage(ctx, bytes.Repeat([]byte{1}, 100), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lease(ctx, photo)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.PutImage(ctx, bytes.Repeat([]byte{byte(10 + i)}, 100), "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	if !s.HasImage(photo) {
		t.Fatal("a leased image was evicted")
	}
	if _, _, b := s.Usage(); b > 300 {
		t.Errorf("%d bytes stored over a 300-byte cap", b)
	}
	l.Release()
	l.Release() // twice is fine
	for i := range 3 {
		if _, err := s.PutImage(ctx, bytes.Repeat([]byte{byte(20 + i)}, 100), "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	if s.HasImage(photo) {
		t.Error("a released image was never evicted")
	}
	if _, err := s.Lease(ctx, photo); !errors.Is(err, ErrNotFound) {
		t.Errorf("lease on an evicted image: %v", err)
	}
	// Written and leased at once: the image a job writes survives the
	// job's next writes even when they overflow the cap.
	h, wl, err := s.PutImageLeased(ctx, bytes.Repeat([]byte{99}, 100), "image/png")
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Release()
	for i := range 4 {
		s.PutImage(ctx, bytes.Repeat([]byte{byte(30 + i)}, 100), "image/png")
	}
	if !s.HasImage(h) {
		t.Error("an image written leased was evicted")
	}
}

// TestOneEvictorKeepsASharedBucketUnderItsCap: a worker's store (no cap:
// it never evicts) writes past the gateway's cap; the gateway's store,
// the evictor, finds it all on its rescan and evicts down to its cap —
// except the image the worker leases, until the worker releases it. A
// lease left by a process that died expires.
func TestOneEvictorKeepsASharedBucketUnderItsCap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	evictor, err := Open(ctx, dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer evictor.Close()
	writer, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	var written []string
	for i := range 10 {
		h, err := writer.PutImage(ctx, bytes.Repeat([]byte{byte(i)}, 200), "image/png")
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, h)
		if i == 0 {
			// Written first, so the evictor's first choice, but leased.
			if _, err := writer.Lease(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := writer.PutRecord(ctx, Hash([]byte("job")), bytes.Repeat([]byte("r"), 300)); err != nil {
		t.Fatal(err)
	}
	if got := bucketBytes(t, dir); got != 2300 {
		t.Fatalf("the writer left %d bytes, want 2300 (it never evicts)", got)
	}
	if err := evictor.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	if got := bucketBytes(t, dir); got > 1000 {
		t.Errorf("after the evictor's rescan the bucket holds %d bytes, over its 1000-byte cap", got)
	}
	if !writer.ImageExists(ctx, written[0]) {
		t.Error("the image the writer leases was evicted by the other process")
	}
	// A dead process's lease expires.
	var old string
	for _, h := range written[1:] {
		if evictor.HasImage(h) {
			old = h
		}
	}
	if old == "" {
		t.Fatal("the evictor kept none of the writer's unleased images")
	}
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	if err := writer.bucket.WriteAll(ctx, leasePrefix+old+"/dead-1", []byte(past), nil); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := evictor.PutImage(ctx, bytes.Repeat([]byte{byte(50 + i)}, 150), "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	if evictor.HasImage(old) {
		t.Error("an image whose only lease had expired was never evicted")
	}
	if ok, _ := writer.bucket.Exists(ctx, leasePrefix+old+"/dead-1"); ok {
		t.Error("the expired lease object was left behind")
	}
}
