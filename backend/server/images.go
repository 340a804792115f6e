package server

import (
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"reword/backend/photo"
	"reword/backend/store"
)

// uploadImage stores a photo and answers its content hash. The photo comes
// as the multipart field "image" or as the raw body with an image content
// type. It is checked exactly as the engine will read it (backend/photo):
// byte and pixel limits before decoding, so a decompression bomb is refused
// without being expanded, then a full decode, so a corrupt file is refused
// here rather than in the middle of an edit.
//
// Uploads are bounded before any of that: UploadsPerMinute per client
// address (more: 429), one at a time per address (more: 429), at most
// UploadsAtOnce at once (more: 503), each body within UploadTimeout (more:
// 408), so that memory stays within UploadsAtOnce × (UploadBytes +
// UploadDecodeBytes), a slow client holds one slot for a bounded time, and
// one address cannot hold every slot.
func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) {
	client := s.clients.Key(r)
	if ok, wait := s.uploadRate.Allow(client); !ok {
		s.refuseUpload(w, http.StatusTooManyRequests, wait,
			fmt.Sprintf("too many uploads from your address (%g a minute, in bursts of %d): try again in %v", s.cfg.UploadsPerMinute, s.cfg.UploadBurst, wait.Round(time.Second)))
		return
	}
	if !s.startUpload(client) {
		s.refuseUpload(w, http.StatusTooManyRequests, time.Second,
			"an upload from your address is still in progress (one at a time): wait for it to finish")
		return
	}
	select {
	case s.uploads <- struct{}{}:
		// The address's mark goes before the slot: once the slot is free
		// (what uploads in progress count), the address may upload again.
		defer func() {
			s.endUpload(client)
			<-s.uploads
		}()
	default:
		s.endUpload(client)
		s.refuseUpload(w, http.StatusServiceUnavailable, time.Second,
			fmt.Sprintf("the server is busy with other uploads (%d at once, its limit): try again in a moment", s.cfg.UploadsAtOnce))
		return
	}
	// The server's ReadTimeout is for small requests; a photo gets its
	// own deadline.
	if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.UploadTimeout)); err != nil {
		s.log.Warn("setting an upload's deadline", "err", err)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.UploadBytes+64<<10)
	data, status, err := s.readUpload(r)
	if err != nil {
		s.metrics.errors.WithLabelValues("upload").Inc()
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	_, info, err := photo.Decode(data, s.photoLimits())
	if err != nil {
		status := http.StatusUnprocessableEntity
		switch {
		case errors.Is(err, photo.ErrTooLarge):
			status = http.StatusRequestEntityTooLarge
		case errors.Is(err, photo.ErrUnsupported):
			status = http.StatusUnsupportedMediaType
		}
		s.metrics.errors.WithLabelValues("upload").Inc()
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	contentType := "image/" + strings.ToLower(string(info.Format))
	hash, err := s.store.PutImage(r.Context(), data, contentType)
	if err != nil {
		s.log.Error("storing upload", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the photo could not be stored"})
		return
	}
	s.metrics.uploads.Inc()
	writeJSON(w, http.StatusCreated, map[string]any{
		"hash": hash, "url": "/images/" + hash + "." + extension(info.Format), "width": info.Width, "height": info.Height, "type": contentType,
	})
}

// startUpload marks client's upload in progress; it reports false when
// one is already.
func (s *Server) startUpload(client string) bool {
	s.uploadingMu.Lock()
	defer s.uploadingMu.Unlock()
	if s.uploading[client] {
		return false
	}
	s.uploading[client] = true
	return true
}

func (s *Server) endUpload(client string) {
	s.uploadingMu.Lock()
	delete(s.uploading, client)
	s.uploadingMu.Unlock()
}

// refuseUpload answers an upload that may not start now, saying when to
// try again.
func (s *Server) refuseUpload(w http.ResponseWriter, status int, retry time.Duration, msg string) {
	s.metrics.errors.WithLabelValues("upload").Inc()
	w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(retry.Seconds())))))
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) photoLimits() photo.Limits {
	return photo.Limits{MaxBytes: s.cfg.UploadBytes, MaxPixels: int64(s.cfg.UploadPixels), MaxDecodeBytes: s.cfg.UploadDecodeBytes}
}

func (s *Server) readUpload(r *http.Request) ([]byte, int, error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, http.StatusUnsupportedMediaType, errors.New("missing or malformed Content-Type: send multipart/form-data with an \"image\" field, or the image bytes with an image/* type")
	}
	var src io.Reader
	switch {
	case ct == "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("malformed multipart body: %w", err)
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, http.StatusBadRequest, errors.New("the multipart body has no \"image\" field")
			}
			if err != nil {
				status, err := s.readError(err)
				return nil, status, err
			}
			if part.FormName() == "image" {
				src = part
				break
			}
		}
	case strings.HasPrefix(ct, "image/"):
		src = r.Body
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %s is not accepted: send multipart/form-data with an \"image\" field, or the image bytes with an image/* type", ct)
	}
	data, err := io.ReadAll(io.LimitReader(src, s.cfg.UploadBytes+1))
	if err != nil {
		status, err := s.readError(err)
		return nil, status, err
	}
	if int64(len(data)) > s.cfg.UploadBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the photo is larger than %d MiB", s.cfg.UploadBytes>>20)
	}
	if len(data) == 0 {
		return nil, http.StatusBadRequest, errors.New("the upload is empty")
	}
	return data, 0, nil
}

// readError is the answer to an upload whose body could not be read.
func (s *Server) readError(err error) (int, error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Errorf("the photo is larger than %d MiB", s.cfg.UploadBytes>>20)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, fmt.Errorf("the upload took longer than %v: try a smaller photo or a faster connection", s.cfg.UploadTimeout)
	}
	return http.StatusBadRequest, fmt.Errorf("reading the upload: %w", err)
}

// extension names an uploaded format in its URL; the server answers every
// name of a stored hash with the stored type, whatever the extension.
func extension(f photo.Format) string {
	if f == photo.JPEG {
		return "jpg"
	}
	return strings.ToLower(string(f))
}

func imageURL(hash string) string { return "/images/" + hash + ".png" }

// serveImage serves a stored image. The name must be a content hash plus
// an extension, so nothing from the request reaches a file path.
func (s *Server) serveImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	hash, _, _ := strings.Cut(name, ".")
	if !store.ValidHash(hash) {
		http.Error(w, "not an image name: want /images/<64 hex digits>.png", http.StatusNotFound)
		return
	}
	if r.Header.Get("If-None-Match") == `"`+hash+`"` && s.store.HasImage(hash) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	data, typ, err := s.store.Image(r.Context(), hash)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "this image has expired or never existed", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("reading image", "hash", hash, "err", err)
		http.Error(w, "the image could not be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Header().Set("ETag", `"`+hash+`"`)
	w.Write(data)
}
