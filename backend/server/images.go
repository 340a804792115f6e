package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"reword/backend/photo"
	"reword/backend/store"
)

// uploadImage stores a photo and answers its content hash. The photo comes
// as the multipart field "image" or as the raw body with an image content
// type. It is checked exactly as the engine will read it (backend/photo):
// byte and pixel limits before decoding, so a decompression bomb is refused
// without being expanded, then a full decode, so a corrupt file is refused
// here rather than in the middle of an edit.
func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) {
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

func (s *Server) photoLimits() photo.Limits {
	return photo.Limits{MaxBytes: s.cfg.UploadBytes, MaxPixels: int64(s.cfg.UploadPixels)}
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
				return nil, uploadStatus(err), fmt.Errorf("reading the multipart body: %w", err)
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
		return nil, uploadStatus(err), fmt.Errorf("reading the upload: %w", err)
	}
	if int64(len(data)) > s.cfg.UploadBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("the photo is larger than %d MiB", s.cfg.UploadBytes>>20)
	}
	if len(data) == 0 {
		return nil, http.StatusBadRequest, errors.New("the upload is empty")
	}
	return data, 0, nil
}

func uploadStatus(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
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
