// Package ort runs ONNX models through ONNX Runtime: it finds and loads the
// C library once per process, creates sessions with a chosen execution
// provider and thread count, and moves typed tensors in and out.
//
// The library is not linked at build time (github.com/yalue/onnxruntime_go
// loads it with dlopen), so it is located at run time: the REWORD_ORT_LIB
// environment variable wins; otherwise the copy that `make ort` provisions
// into .cache/ort/<version>/ of the repository is searched for above the
// executable and above the working directory.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// Version is the ONNX Runtime release this package is built and tested
// against; onnxruntime_go v1.27.0 speaks the C API of the 1.24 series.
const Version = "1.24.1"

// LibraryEnv names the environment variable that points at libonnxruntime.
const LibraryEnv = "REWORD_ORT_LIB"

// cacheRel is where `make ort` puts the library, relative to the repository.
var cacheRel = filepath.Join(".cache", "ort", Version, "libonnxruntime.so.1")

var (
	initOnce sync.Once
	initErr  error
	initLib  string
)

// Init loads the ONNX Runtime library and creates the process-wide
// environment. It is safe to call many times; only the first call does work,
// and every call returns that first result.
func Init() error {
	initOnce.Do(func() {
		lib, err := LibraryPath()
		if err != nil {
			initErr = err
			return
		}
		onnx.SetSharedLibraryPath(lib)
		if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("loading ONNX Runtime from %s (want version %s, set %s to another copy): %w", lib, Version, LibraryEnv, err)
			return
		}
		if v := onnx.GetVersion(); !strings.HasPrefix(v, "1.24.") {
			initErr = fmt.Errorf("ONNX Runtime at %s is version %s; this build needs %s (1.24.x): set %s or run `make ort`", lib, v, Version, LibraryEnv)
			return
		}
		initLib = lib
	})
	return initErr
}

// LoadedLibrary returns the path of the library Init loaded, or "" before a
// successful Init.
func LoadedLibrary() string { return initLib }

// RuntimeVersion returns the version string reported by the loaded library.
func RuntimeVersion() string {
	if Init() != nil {
		return ""
	}
	return onnx.GetVersion()
}

// LibraryPath finds libonnxruntime without loading it.
func LibraryPath() (string, error) {
	if p := os.Getenv(LibraryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", LibraryEnv, p, err)
		}
		return p, nil
	}
	var searched []string
	for _, start := range searchRoots() {
		for dir := start; ; dir = filepath.Dir(dir) {
			candidate := filepath.Join(dir, cacheRel)
			searched = append(searched, candidate)
			if _, err := os.Stat(candidate); err == nil {
				return candidate, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", &MissingLibraryError{Searched: searched}
}

// MissingLibraryError reports that no ONNX Runtime library was found.
type MissingLibraryError struct{ Searched []string }

func (e *MissingLibraryError) Error() string {
	return fmt.Sprintf("ONNX Runtime library not found: set %s to the path of libonnxruntime.so.1 (version %s), "+
		"or run `make ort` in the Reword repository to fetch it into %s (looked in %d places, first %s)",
		LibraryEnv, Version, filepath.Dir(cacheRel), len(e.Searched), first(e.Searched))
}

func first(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return s[0]
}

// searchRoots are the directories whose ancestors may hold the repository's
// .cache folder: the executable's (bin/reword) and the working directory
// (go test runs in the package directory).
func searchRoots() []string {
	var roots []string
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		roots = append(roots, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	return roots
}

// ErrClosed is returned by a Session used after Close.
var ErrClosed = errors.New("ort: session is closed")
