// Package store keeps uploaded photos, result images and result records in
// a blob store (gocloud.dev/blob): a local folder by default, an
// S3-compatible bucket by configuration. Images are content-addressed by the
// SHA-256 of their bytes, so a key can never name anything but the bytes it
// was computed from, and user input never becomes a file path.
//
// A store opened with a byte cap is its bucket's evictor: beyond the cap
// it deletes the least recently used images and records (an edit link
// that references an evicted photo then says the photo expired). The cap
// counts records as well as images: a result record carries its heat
// maps, over 100 KB at 512 px. Several processes may share one bucket
// (a cluster's gateways and workers); exactly one of them should evict
// (or none, leaving it to the bucket's lifecycle rules). The evictor
// rescans the bucket every RescanEvery, so that its cap covers what the
// others wrote too.
//
// Nothing in use is evicted: a photo or result image that someone holds a
// Lease on — in this process, or in any process sharing the bucket,
// through a lease object under leases/ — stays until it is released, or
// until its holder stops renewing the lease (a crashed process) and it
// expires after LeaseTTL.
package store

import (
	"container/list"
	"context"
	"crypto/rand"
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
	leasePrefix  = "leases/"
)

// MaxEntries bounds the images and records an evicting store indexes,
// whatever their size, so that its index stays small in memory.
const MaxEntries = 1_000_000

// LeaseTTL is how long a lease outlives its holder's last renewal;
// holders renew every LeaseTTL/3.
var LeaseTTL = 2 * time.Minute

// RescanEvery is how often an evicting store lists its bucket for what
// other processes wrote or deleted.
var RescanEvery = time.Minute

// Store is safe for concurrent use.
type Store struct {
	bucket *blob.Bucket
	limit  int64
	id     string // this store's lease holder id

	mu         sync.Mutex
	index      map[string]*list.Element // blob key (images/…, records/…) → element of lru (value *entry)
	lru        *list.List               // front = most recently used
	bytes      int64
	images     int
	maxEntries int
	pins       map[string]int // image hash → leases held here
	leases     map[*Lease]bool
	leaseSeq   int

	evicting  sync.Mutex // one eviction pass at a time
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type entry struct {
	key     string // blob key
	size    int64
	indexed time.Time // when this process indexed it
}

func (e *entry) isImage() bool { return strings.HasPrefix(e.key, imagePrefix) }

// Open opens the store at location: a folder path (created if missing) or
// a gocloud.dev blob URL such as s3://bucket?region=…&endpoint=…. limit caps
// the bytes of images and records kept; a store with a cap evicts, one
// without (0) never deletes anything.
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
	var id [8]byte
	rand.Read(id[:])
	s := &Store{bucket: b, limit: limit, id: hex.EncodeToString(id[:]),
		index: map[string]*list.Element{}, lru: list.New(), maxEntries: MaxEntries,
		pins: map[string]int{}, leases: map[*Lease]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.load(ctx); err != nil {
		b.Close()
		return nil, err
	}
	go s.background()
	return s, nil
}

// listed is a blob found by listing the bucket.
type listed struct {
	key  string
	size int64
	mod  time.Time
}

// list lists the images and records in the bucket.
func (s *Store) list(ctx context.Context) ([]listed, error) {
	var all []listed
	for _, prefix := range []string{imagePrefix, recordPrefix} {
		it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
		for {
			obj, err := it.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("store: listing %s: %w", strings.TrimSuffix(prefix, "/"), err)
			}
			if ValidHash(strings.TrimPrefix(obj.Key, prefix)) {
				all = append(all, listed{obj.Key, obj.Size, obj.ModTime})
			}
		}
	}
	return all, nil
}

// load indexes what is already stored, oldest first, so that a restart
// keeps what was stored and evicts in roughly the order it was written.
func (s *Store) load(ctx context.Context) error {
	all, err := s.list(ctx)
	if err != nil {
		return err
	}
	// Newest first, so the oldest end up at the back of the LRU list.
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	now := time.Now()
	for _, f := range all {
		s.addLocked(f.key, f.size, now, false)
	}
	if s.limit > 0 {
		return s.evict(ctx, "")
	}
	return nil
}

// addLocked indexes a blob, at the front (just used) or the back.
func (s *Store) addLocked(key string, size int64, now time.Time, front bool) {
	if _, ok := s.index[key]; ok {
		return
	}
	e := &entry{key: key, size: size, indexed: now}
	if front {
		s.index[key] = s.lru.PushFront(e)
	} else {
		s.index[key] = s.lru.PushBack(e)
	}
	s.bytes += size
	if e.isImage() {
		s.images++
	}
}

func (s *Store) removeLocked(el *list.Element) {
	e := el.Value.(*entry)
	s.lru.Remove(el)
	delete(s.index, e.key)
	s.bytes -= e.size
	if e.isImage() {
		s.images--
	}
}

// touch marks key as just used; it reports whether key is indexed.
func (s *Store) touch(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.index[key]
	if ok {
		s.lru.MoveToFront(el)
	}
	return ok
}

// forget drops key from the index: its blob was deleted behind our back.
func (s *Store) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.index[key]; ok {
		s.removeLocked(el)
	}
}

// background renews this store's leases and, in an evicting store,
// rescans the bucket, until Close.
func (s *Store) background() {
	defer close(s.done)
	renew := time.NewTicker(LeaseTTL / 3)
	defer renew.Stop()
	var rescan <-chan time.Time
	if s.limit > 0 {
		t := time.NewTicker(RescanEvery)
		defer t.Stop()
		rescan = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-renew.C:
			s.renewLeases()
		case <-rescan:
			ctx, cancel := context.WithTimeout(context.Background(), RescanEvery)
			s.Rescan(ctx) // best effort: the next rescan retries
			cancel()
		}
	}
}

// Close stops the background work and releases the bucket. Leases still
// held are left to expire. Safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.bucket.Close()
	})
	return s.closeErr
}

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
	h, _, err := s.putImage(ctx, data, contentType, false)
	return h, err
}

// PutImageLeased stores data like PutImage and leases it at once, so that
// no eviction can come between the two (see Lease).
func (s *Store) PutImageLeased(ctx context.Context, data []byte, contentType string) (string, *Lease, error) {
	return s.putImage(ctx, data, contentType, true)
}

func (s *Store) putImage(ctx context.Context, data []byte, contentType string, lease bool) (string, *Lease, error) {
	if s.limit > 0 && int64(len(data)) > s.limit {
		return "", nil, fmt.Errorf("store: image of %d bytes is larger than the whole storage cap (%d bytes)", len(data), s.limit)
	}
	h := Hash(data)
	key := imagePrefix + h
	if !s.touch(key) {
		err := s.bucket.WriteAll(ctx, key, data, &blob.WriterOptions{
			ContentType:  contentType,
			CacheControl: "public, max-age=31536000, immutable",
		})
		if err != nil {
			return "", nil, fmt.Errorf("store: writing image: %w", err)
		}
		s.mu.Lock()
		s.addLocked(key, int64(len(data)), time.Now(), true)
		s.mu.Unlock()
	}
	var l *Lease
	if lease {
		var err error
		if l, err = s.lease(ctx, h); err != nil {
			return "", nil, err
		}
	}
	if err := s.evict(ctx, key); err != nil {
		if l != nil {
			l.Release()
		}
		return h, nil, err
	}
	return h, l, nil
}

// Image returns the stored bytes and content type of hash, or ErrNotFound.
func (s *Store) Image(ctx context.Context, hash string) ([]byte, string, error) {
	if !ValidHash(hash) {
		return nil, "", fmt.Errorf("%q is not an image hash (64 lowercase hex digits): %w", hash, ErrNotFound)
	}
	if !s.touch(imagePrefix+hash) && !s.adopt(ctx, hash) {
		return nil, "", ErrNotFound
	}
	r, err := s.bucket.NewReader(ctx, imagePrefix+hash, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			// Deleted behind our back (another process's eviction): forget it.
			s.forget(imagePrefix + hash)
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
	_, ok := s.index[imagePrefix+hash]
	s.mu.Unlock()
	return ok || (ValidHash(hash) && s.adopt(context.Background(), hash))
}

// ImageExists reports whether hash is in the bucket now, asking the
// bucket rather than the index: another process (or a lifecycle rule)
// may have deleted it. The index follows what it finds.
func (s *Store) ImageExists(ctx context.Context, hash string) bool {
	if !ValidHash(hash) {
		return false
	}
	if _, err := s.bucket.Attributes(ctx, imagePrefix+hash); err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			s.forget(imagePrefix + hash)
		}
		return false
	}
	if !s.touch(imagePrefix + hash) {
		s.adopt(ctx, hash)
	}
	return true
}

// adopt indexes an image that another process sharing the bucket wrote
// after this one last listed it (a cluster worker's result, read by a
// gateway), and reports whether it exists.
func (s *Store) adopt(ctx context.Context, hash string) bool {
	key := imagePrefix + hash
	attrs, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return false
	}
	s.mu.Lock()
	s.addLocked(key, attrs.Size, time.Now(), true)
	s.mu.Unlock()
	// Best effort: adopting is a read path; a failed delete leaves a blob
	// that the next rescan or start finds and evicts.
	_ = s.evict(ctx, key)
	return true
}

// Usage reports the stored images and records and their bytes, as this
// process indexes them (an evicting store: the whole bucket as of its
// last rescan).
func (s *Store) Usage() (images, records int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.images, s.lru.Len() - s.images, s.bytes
}

// PutRecord stores a document under key (a content hash computed by the
// caller, e.g. of a canonical spec). Records count against the cap like
// images.
func (s *Store) PutRecord(ctx context.Context, key string, data []byte) error {
	if !ValidHash(key) {
		return fmt.Errorf("store: record key %q is not a 64-digit hex hash", key)
	}
	if s.limit > 0 && int64(len(data)) > s.limit {
		return fmt.Errorf("store: record of %d bytes is larger than the whole storage cap (%d bytes)", len(data), s.limit)
	}
	bk := recordPrefix + key
	if err := s.bucket.WriteAll(ctx, bk, data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("store: writing record: %w", err)
	}
	s.mu.Lock()
	if el, ok := s.index[bk]; ok { // rewritten: its size may differ
		s.removeLocked(el)
	}
	s.addLocked(bk, int64(len(data)), time.Now(), true)
	s.mu.Unlock()
	return s.evict(ctx, bk)
}

// Record returns the document stored under key, or ErrNotFound.
func (s *Store) Record(ctx context.Context, key string) ([]byte, error) {
	if !ValidHash(key) {
		return nil, ErrNotFound
	}
	bk := recordPrefix + key
	data, err := s.bucket.ReadAll(ctx, bk)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			s.forget(bk)
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("store: reading record: %w", err)
	}
	if !s.touch(bk) {
		// Written by another process: it counts against the cap here too.
		s.mu.Lock()
		s.addLocked(bk, int64(len(data)), time.Now(), true)
		s.mu.Unlock()
		_ = s.evict(ctx, bk)
	}
	return data, nil
}

// Rescan lists the bucket: what other processes wrote since the last
// look is indexed (as just used: it is new), what they deleted is
// forgotten, and an evicting store then evicts down to its cap.
func (s *Store) Rescan(ctx context.Context) error {
	start := time.Now()
	all, err := s.list(ctx)
	if err != nil {
		return err
	}
	// Oldest first, so that of what is new to this process the most
	// recently written ends up in front.
	sort.Slice(all, func(i, j int) bool { return all[i].mod.Before(all[j].mod) })
	found := make(map[string]bool, len(all))
	s.mu.Lock()
	for _, f := range all {
		found[f.key] = true
		s.addLocked(f.key, f.size, start, true)
	}
	for el := s.lru.Front(); el != nil; {
		next := el.Next()
		// Entries indexed after the listing began may be missing from it.
		if e := el.Value.(*entry); !found[e.key] && e.indexed.Before(start) {
			s.removeLocked(el)
		}
		el = next
	}
	s.mu.Unlock()
	return s.evict(ctx, "")
}

// evict deletes the least recently used images and records until the
// cap and MaxEntries hold, never keep (the blob just written), an image
// leased here, or one leased by another process; it does nothing in a
// store without a cap.
func (s *Store) evict(ctx context.Context, keep string) error {
	if s.limit <= 0 {
		return nil
	}
	s.evicting.Lock()
	defer s.evicting.Unlock()
	inUse := map[string]bool{keep: true}
	for {
		s.mu.Lock()
		if s.bytes <= s.limit && s.lru.Len() <= s.maxEntries {
			s.mu.Unlock()
			return nil
		}
		var victim *entry
		for el := s.lru.Back(); el != nil; el = el.Prev() {
			e := el.Value.(*entry)
			if !inUse[e.key] && s.pins[strings.TrimPrefix(e.key, imagePrefix)] == 0 {
				victim = e
				break
			}
		}
		s.mu.Unlock()
		if victim == nil {
			return nil // everything left is in use
		}
		if victim.isImage() {
			leased, err := s.leasedElsewhere(ctx, strings.TrimPrefix(victim.key, imagePrefix))
			if err != nil || leased {
				inUse[victim.key] = true
				continue
			}
		}
		// Leased here meanwhile, or used again: not a victim any more.
		s.mu.Lock()
		el, ok := s.index[victim.key]
		if !ok || el.Value.(*entry) != victim || s.pins[strings.TrimPrefix(victim.key, imagePrefix)] > 0 {
			s.mu.Unlock()
			inUse[victim.key] = true
			continue
		}
		s.removeLocked(el)
		s.mu.Unlock()
		if err := s.bucket.Delete(ctx, victim.key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("store: evicting %s: %w", victim.key, err)
		}
	}
}

// A Lease keeps an image from being evicted, by any process sharing the
// bucket, until Release.
type Lease struct {
	s    *Store
	hash string
	key  string // its lease object
	once sync.Once
}

// Lease leases the stored image hash, or fails with ErrNotFound when it
// is not stored (any more).
func (s *Store) Lease(ctx context.Context, hash string) (*Lease, error) {
	if !ValidHash(hash) {
		return nil, fmt.Errorf("%q is not an image hash: %w", hash, ErrNotFound)
	}
	if !s.touch(imagePrefix+hash) && !s.adopt(ctx, hash) {
		return nil, ErrNotFound
	}
	return s.lease(ctx, hash)
}

func (s *Store) lease(ctx context.Context, hash string) (*Lease, error) {
	s.mu.Lock()
	if _, ok := s.index[imagePrefix+hash]; !ok {
		s.mu.Unlock()
		return nil, ErrNotFound // evicted in between
	}
	s.pins[hash]++
	s.leaseSeq++
	l := &Lease{s: s, hash: hash, key: fmt.Sprintf("%s%s/%s-%d", leasePrefix, hash, s.id, s.leaseSeq)}
	s.leases[l] = true
	s.mu.Unlock()
	if err := s.writeLease(ctx, l); err != nil {
		l.Release()
		return nil, err
	}
	// Another process may have deleted it before seeing the lease object.
	if _, err := s.bucket.Attributes(ctx, imagePrefix+hash); gcerrors.Code(err) == gcerrors.NotFound {
		l.Release()
		s.forget(imagePrefix + hash)
		return nil, ErrNotFound
	}
	return l, nil
}

// writeLease writes (or renews) l's lease object: its expiry.
func (s *Store) writeLease(ctx context.Context, l *Lease) error {
	expiry := time.Now().Add(LeaseTTL).UTC().Format(time.RFC3339Nano)
	if err := s.bucket.WriteAll(ctx, l.key, []byte(expiry), &blob.WriterOptions{ContentType: "text/plain"}); err != nil {
		return fmt.Errorf("store: writing a lease: %w", err)
	}
	return nil
}

func (s *Store) renewLeases() {
	s.mu.Lock()
	held := make([]*Lease, 0, len(s.leases))
	for l := range s.leases {
		held = append(held, l)
	}
	s.mu.Unlock()
	for _, l := range held {
		ctx, cancel := context.WithTimeout(context.Background(), LeaseTTL/3)
		s.writeLease(ctx, l) // best effort: it has LeaseTTL to succeed
		cancel()
	}
}

// Release ends the lease. Safe to call more than once.
func (l *Lease) Release() {
	l.once.Do(func() {
		s := l.s
		s.mu.Lock()
		if s.pins[l.hash]--; s.pins[l.hash] <= 0 {
			delete(s.pins, l.hash)
		}
		delete(s.leases, l)
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A lease object left behind expires after LeaseTTL.
		_ = s.bucket.Delete(ctx, l.key)
	})
}

// leasedElsewhere reports whether any process holds an unexpired lease on
// hash, deleting expired lease objects on the way.
func (s *Store) leasedElsewhere(ctx context.Context, hash string) (bool, error) {
	it := s.bucket.List(&blob.ListOptions{Prefix: leasePrefix + hash + "/"})
	leased := false
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return leased, nil
		}
		if err != nil {
			return false, fmt.Errorf("store: listing leases: %w", err)
		}
		b, err := s.bucket.ReadAll(ctx, obj.Key)
		if err != nil {
			continue // released meanwhile
		}
		expiry, err := time.Parse(time.RFC3339Nano, string(b))
		if err == nil && time.Now().Before(expiry) {
			leased = true
			continue
		}
		_ = s.bucket.Delete(ctx, obj.Key)
	}
}
