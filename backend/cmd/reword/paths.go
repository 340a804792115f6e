package main

import (
	"os"
	"path/filepath"
)

// defaultPath finds rel (a path inside the Reword repository, such as
// models/tiny) above the executable (bin/reword sits in the repository) or
// above the working directory, so that `bin/reword serve` works from any
// folder of a checkout. It returns rel unchanged when nothing is found,
// which then fails with a clear "not found" error naming it.
func defaultPath(rel string) string {
	var roots []string
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		roots = append(roots, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	for _, root := range roots {
		for dir := root; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, rel)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return rel
}

// envOr returns the environment variable's value, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
