package server

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"strings"

	_ "golang.org/x/image/webp"

	"reword/backend/store"
)

// uploadTypes are the photo formats accepted, by sniffed content type.
var uploadTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/webp": true, "image/gif": true}

// uploadImage stores a photo and answers its content hash. The photo comes
// as the multipart field "image" or as the raw body with an image content
// type. Its size and pixel count are checked before it is decoded, so a
// decompression bomb is refused without being expanded.
func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.UploadBytes+64<<10)
	data, status, err := s.readUpload(r)
	if err != nil {
		s.metrics.errors.WithLabelValues("upload").Inc()
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	sniffed := http.DetectContentType(data)
	if !uploadTypes[sniffed] {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": fmt.Sprintf("the file is %s, not a photo: upload PNG, JPEG, WebP or GIF", sniffed)})
		return
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": "the image is corrupt or truncated: " + err.Error()})
		return
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > s.cfg.UploadPixels || cfg.Width > 1<<15 || cfg.Height > 1<<15 {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("the image is %d×%d pixels; the limit is %d megapixels", cfg.Width, cfg.Height, s.cfg.UploadPixels/1_000_000)})
		return
	}
	// Only now, with the size known to be bounded, decode the whole file:
	// a truncated or corrupt photo is refused here, not in the middle of an
	// edit.
	if _, _, err := image.Decode(bytes.NewReader(data)); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": "the image is corrupt or truncated: " + err.Error()})
		return
	}
	hash, err := s.store.PutImage(r.Context(), data, sniffed)
	if err != nil {
		s.log.Error("storing upload", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the photo could not be stored"})
		return
	}
	s.metrics.uploads.Inc()
	writeJSON(w, http.StatusCreated, map[string]any{
		"hash": hash, "url": imageURL(hash), "width": cfg.Width, "height": cfg.Height, "type": sniffed,
	})
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
