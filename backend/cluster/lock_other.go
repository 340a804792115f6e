//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cluster

// lockDir does not lock where flock(2) is missing: two processes must not
// be given the same JetStream folder there.
func lockDir(dir string) (unlock func(), err error) {
	return func() {}, nil
}
