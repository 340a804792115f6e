//go:build !linux

package main

import "time"

// threadCPUTime is not measured outside Linux: 0, and the benchmark reports
// wall-clock times only.
func threadCPUTime() time.Duration { return 0 }
