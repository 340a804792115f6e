//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir/reword.lock, held until
// unlock is called or the process exits (the kernel drops it then, so a
// crash never leaves a stale lock behind).
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "reword.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cluster: opening the lock of the JetStream folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("cluster: another process runs an embedded NATS on %s (it holds %s): stop it, or give this one its own folder", dir, path)
		}
		return nil, fmt.Errorf("cluster: locking %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
