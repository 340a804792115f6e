package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
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
	if n, b := s.Usage(); n != 2 || b != 200 {
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
	if n, b := reader.Usage(); n != 1 || b != int64(len(data)) {
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
	if n, bytes := a.Usage(); n != 0 || bytes != 0 {
		t.Errorf("usage %d images %d bytes after forgetting", n, bytes)
	}
}

func TestRecordsAreBoundedByCount(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.maxRecords = 2
	keys := []string{Hash([]byte("a")), Hash([]byte("b")), Hash([]byte("c"))}
	for i, k := range keys {
		if err := s.PutRecord(ctx, k, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if _, err := s.Record(ctx, keys[0]); err != nil { // keys[1] is now the oldest
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Record(ctx, keys[1]); !errors.Is(err, ErrNotFound) {
		t.Errorf("least recently used record kept: %v", err)
	}
	for _, k := range []string{keys[0], keys[2]} {
		if _, err := s.Record(ctx, k); err != nil {
			t.Errorf("record %s lost: %v", k[:8], err)
		}
	}
	s.Close()
	// A restart re-indexes the records on disk.
	s2, err := Open(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := s2.recordLRU.Len(); n != 2 {
		t.Errorf("reopened store indexes %d records, want 2", n)
	}
}
