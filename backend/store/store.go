// Package store keeps uploaded photos, result images and result records in
// a blob store (gocloud.dev/blob): a local folder by default, an
// S3-compatible bucket by configuration. Images are content-addressed by the
// SHA-256 of their bytes, so a key can never name anything but the bytes it
// was computed from, and user input never becomes a file path.
//
// The store has a byte cap: when it is exceeded, the least recently used
// images are evicted (an edit link that references an evicted photo then
// says the photo expired). Records (small JSON documents such as the result
// of a spec) are kept while the images they reference exist.
package store

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	// Drivers selectable by URL: mem:// for tests and s3:// for
	// S3-compatible services (AWS, MinIO, R2, …).
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"
)

// ErrNotFound means the hash or key is unknown: never stored, or evicted.
var ErrNotFound = errors.New("not found (never stored, or evicted to stay under the storage cap)")

const (
	imagePrefix  = "images/"
	recordPrefix = "records/"
)

// Store is safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	limit  int64

	mu    sync.Mutex
	index map[string]*list.Element // image hash → element of lru (value *entry)
	lru   *list.List               // front = most recently used
	bytes int64

	// Records are small, but one is written per distinct spec, so they are
	// bounded by count: the least recently used beyond MaxRecords go.
	records    map[string]*list.Element // record key → element of recordLRU (value string)
	recordLRU  *list.List
	maxRecords int
}

// MaxRecords bounds the result records kept (about 1 KB each).
const MaxRecords = 100_000

type entry struct {
	hash string
	size int64
}

// Open opens the store at location: a folder path (created if missing) or
// a gocloud.dev blob URL such as s3://bucket?region=…&endpoint=…. limit caps
// the bytes of images kept (0 = no cap).
func Open(ctx context.Context, location string, limit int64) (*Store, error) {
	if limit < 0 {
		return nil, fmt.Errorf("store: size cap must be ≥ 0 bytes, got %d", limit)
	}
	var b *blob.Bucket
	var err error
	if u, perr := url.Parse(location); perr == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		b, err = blob.OpenBucket(ctx, location)
	} else {
		dir, aerr := filepath.Abs(location)
		if aerr != nil {
			return nil, aerr
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("store: creating %s: %w", dir, err)
		}
		b, err = fileblob.OpenBucket(dir, &fileblob.Options{Metadata: fileblob.MetadataInSidecar})
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", location, err)
	}
	s := &Store{bucket: b, limit: limit, index: map[string]*list.Element{}, lru: list.New(),
		records: map[string]*list.Element{}, recordLRU: list.New(), maxRecords: MaxRecords}
	if err := s.load(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

// load indexes the images already stored, oldest first, so that a restart
// keeps what was stored and evicts in roughly the order it was written.
func (s *Store) load(ctx context.Context) error {
	type found struct {
		hash string
		size int64
		mod  time.Time
	}
	var all []found
	it := s.bucket.List(&blob.ListOptions{Prefix: imagePrefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("store: listing images: %w", err)
		}
		h := strings.TrimPrefix(obj.Key, imagePrefix)
		if ValidHash(h) {
			all = append(all, found{h, obj.Size, obj.ModTime})
		}
	}
	// Newest first, so the oldest end up at the back of the LRU list.
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	for _, f := range all {
		s.index[f.hash] = s.lru.PushBack(&entry{f.hash, f.size})
		s.bytes += f.size
	}
	var recs []found
	it = s.bucket.List(&blob.ListOptions{Prefix: recordPrefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("store: listing records: %w", err)
		}
		if k := strings.TrimPrefix(obj.Key, recordPrefix); ValidHash(k) {
			recs = append(recs, found{k, obj.Size, obj.ModTime})
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].mod.After(recs[j].mod) })
	for _, r := range recs {
		s.records[r.hash] = s.recordLRU.PushBack(r.hash)
	}
	return nil
}

// touchRecordLocked marks key as just used and returns the records to
// delete to stay within MaxRecords.
func (s *Store) touchRecordLocked(key string) []string {
	if el, ok := s.records[key]; ok {
		s.recordLRU.MoveToFront(el)
	} else {
		s.records[key] = s.recordLRU.PushFront(key)
	}
	var victims []string
	for s.recordLRU.Len() > s.maxRecords {
		el := s.recordLRU.Back()
		k := el.Value.(string)
		s.recordLRU.Remove(el)
		delete(s.records, k)
		victims = append(victims, k)
	}
	return victims
}

// Close releases the bucket.
func (s *Store) Close() error { return s.bucket.Close() }

// Hash is the content address of data.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ValidHash reports whether h looks like a content address (64 lowercase
// hex digits).
func ValidHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PutImage stores data under its hash and returns the hash. Storing bytes
// that are already there only marks them as recently used.
func (s *Store) PutImage(ctx context.Context, data []byte, contentType string) (string, error) {
	if s.limit > 0 && int64(len(data)) > s.limit {
		return "", fmt.Errorf("store: image of %d bytes is larger than the whole storage cap (%d bytes)", len(data), s.limit)
	}
	h := Hash(data)
	s.mu.Lock()
	if el, ok := s.index[h]; ok {
		s.lru.MoveToFront(el)
		s.mu.Unlock()
		return h, nil
	}
	s.mu.Unlock()
	err := s.bucket.WriteAll(ctx, imagePrefix+h, data, &blob.WriterOptions{
		ContentType:  contentType,
		CacheControl: "public, max-age=31536000, immutable",
	})
	if err != nil {
		return "", fmt.Errorf("store: writing image: %w", err)
	}
	s.mu.Lock()
	if _, ok := s.index[h]; !ok {
		s.index[h] = s.lru.PushFront(&entry{h, int64(len(data))})
		s.bytes += int64(len(data))
	}
	victims := s.evictLocked(h)
	s.mu.Unlock()
	if err := s.deleteImages(ctx, victims); err != nil {
		return h, err
	}
	return h, nil
}

// deleteImages removes evicted images from the bucket. An image stored
// again between its eviction and this delete is re-indexed by then and is
// kept.
func (s *Store) deleteImages(ctx context.Context, hashes []string) error {
	for _, v := range hashes {
		s.mu.Lock()
		_, again := s.index[v]
		s.mu.Unlock()
		if again {
			continue
		}
		if err := s.bucket.Delete(ctx, imagePrefix+v); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("store: evicting %s: %w", v, err)
		}
	}
	return nil
}

// evictLocked drops least recently used images until the cap holds, never
// the one just written.
func (s *Store) evictLocked(keep string) []string {
	var victims []string
	for s.limit > 0 && s.bytes > s.limit {
		el := s.lru.Back()
		e := el.Value.(*entry)
		if e.hash == keep {
			break
		}
		s.lru.Remove(el)
		delete(s.index, e.hash)
		s.bytes -= e.size
		victims = append(victims, e.hash)
	}
	return victims
}

// Image returns the stored bytes and content type of hash, or ErrNotFound.
func (s *Store) Image(ctx context.Context, hash string) ([]byte, string, error) {
	if !ValidHash(hash) {
		return nil, "", fmt.Errorf("%q is not an image hash (64 lowercase hex digits): %w", hash, ErrNotFound)
	}
	s.mu.Lock()
	el, ok := s.index[hash]
	if ok {
		s.lru.MoveToFront(el)
	}
	s.mu.Unlock()
	if !ok && !s.adopt(ctx, hash) {
		return nil, "", ErrNotFound
	}
	r, err := s.bucket.NewReader(ctx, imagePrefix+hash, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			// Deleted behind our back (another process's eviction): forget it.
			s.forget(hash)
			return nil, "", ErrNotFound
		}
		return nil, "", fmt.Errorf("store: reading %s: %w", hash, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, "", fmt.Errorf("store: reading %s: %w", hash, err)
	}
	return data, r.ContentType(), nil
}

// HasImage reports whether hash is stored.
func (s *Store) HasImage(hash string) bool {
	s.mu.Lock()
	_, ok := s.index[hash]
	s.mu.Unlock()
	return ok || (ValidHash(hash) && s.adopt(context.Background(), hash))
}

// adopt indexes an image that another process sharing the bucket wrote
// after this one loaded its index (a cluster worker's result, read by a
// gateway), and reports whether it exists. Each process evicts only what
// its own index holds, so the cap is per process, not per bucket.
func (s *Store) adopt(ctx context.Context, hash string) bool {
	attrs, err := s.bucket.Attributes(ctx, imagePrefix+hash)
	if err != nil {
		return false
	}
	s.mu.Lock()
	if _, ok := s.index[hash]; !ok {
		s.index[hash] = s.lru.PushFront(&entry{hash, attrs.Size})
		s.bytes += attrs.Size
	}
	victims := s.evictLocked(hash)
	s.mu.Unlock()
	// Best effort: adopting is a read path; a failed delete leaves an
	// unindexed blob that the next start re-indexes and evicts.
	_ = s.deleteImages(ctx, victims)
	return true
}

func (s *Store) forget(hash string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.index[hash]; ok {
		s.lru.Remove(el)
		delete(s.index, hash)
		s.bytes -= el.Value.(*entry).size
	}
}

// Usage reports the stored image count and bytes.
func (s *Store) Usage() (images int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.index), s.bytes
}

// PutRecord stores a small document under key (a content hash computed by
// the caller, e.g. of a canonical spec).
func (s *Store) PutRecord(ctx context.Context, key string, data []byte) error {
	if !ValidHash(key) {
		return fmt.Errorf("store: record key %q is not a 64-digit hex hash", key)
	}
	if err := s.bucket.WriteAll(ctx, recordPrefix+key, data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("store: writing record: %w", err)
	}
	s.mu.Lock()
	victims := s.touchRecordLocked(key)
	s.mu.Unlock()
	for _, k := range victims {
		if err := s.bucket.Delete(ctx, recordPrefix+k); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("store: evicting record %s: %w", k, err)
		}
	}
	return nil
}

// Record returns the document stored under key, or ErrNotFound.
func (s *Store) Record(ctx context.Context, key string) ([]byte, error) {
	if !ValidHash(key) {
		return nil, ErrNotFound
	}
	data, err := s.bucket.ReadAll(ctx, recordPrefix+key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: reading record: %w", err)
	}
	s.mu.Lock()
	if el, ok := s.records[key]; ok {
		s.recordLRU.MoveToFront(el)
	}
	s.mu.Unlock()
	return data, nil
}
