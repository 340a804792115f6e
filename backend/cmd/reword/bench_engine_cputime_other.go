//go:build !unix

package main

import "time"

// processCPUTime is not measured here: bench engine shows wall-clock times
// only.
func processCPUTime() time.Duration { return 0 }
