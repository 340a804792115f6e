//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time the process has used, user and system, on
// every thread: the work of an engine run without the time other processes
// take on a shared machine. 0 when the system does not say.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
