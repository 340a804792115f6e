package web

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// TestDownloadAllZip: the archive holds each image under the name the
// results give it, the spec as run and its link.
func TestDownloadAllZip(t *testing.T) {
	seed := uint64(7)
	res := &protocol.Result{Spec: edit.Spec{Source: "a", Targets: []string{"b", "c"}, Seed: &seed}, Link: "v2.x"}
	rows := []rowView{
		{Index: 0, Role: protocol.RoleSource, Image: &protocol.Image{URL: "/images/0.png"}},
		{Index: 1, Role: protocol.RoleTarget, Image: &protocol.Image{URL: "/images/1.png"}},
		{Index: 2, Role: protocol.RoleTarget, Image: &protocol.Image{URL: "/images/2.png"}},
	}
	get := func(url string) ([]byte, error) { return []byte("png of " + url), nil }
	files, err := runFiles(rows, false, res, get)
	if err != nil {
		t.Fatal(err)
	}
	data, err := buildZip(files, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var names []string
	for _, f := range zr.File {
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		got[f.Name] = string(b)
		names = append(names, f.Name)
	}
	if strings.Join(names, " ") != "source.png edit-1.png edit-2.png spec.json link.txt" {
		t.Errorf("files %v", names)
	}
	if got["edit-2.png"] != "png of /images/2.png" || !strings.Contains(got["spec.json"], `"seed": 7`) || !strings.HasSuffix(got["link.txt"], "#v2.x\n") {
		t.Errorf("contents %q", got)
	}
	if zipName(res) != "reword-seed-7.zip" {
		t.Errorf("zip name %q", zipName(res))
	}
	if _, err := runFiles(rows, true, res, func(string) ([]byte, error) { return nil, errors.New("gone") }); err == nil || err.Error() != "Reconstruction: gone" {
		t.Errorf("a failed image: %v", err)
	}
}
