package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkThroughput runs batches of 12 tiny-model jobs (4 steps) through
// one gateway on a single NATS node with 1, 2 and 3 workers (one ONNX
// Runtime thread each) and reports jobs per second. Workers share this
// machine's cores: the scaling it shows is bounded by the core count, not
// by the cluster layer.
func BenchmarkThroughput(b *testing.B) {
	for _, workers := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			c := newTestCluster(b, 1, 1, workers, Settings{AckWait: 2 * time.Second})
			g := c.gateways[0]
			const batch = 12
			seed := uint64(0)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var jobs []*Job
				for k := range batch {
					seed++
					j, err := g.submit(context.Background(), c.model, fmt.Sprint("client", k), fmt.Sprint("bench-", seed, "-", k), c.resolved(g, runOf(seed, 4)), Events{})
					must(b, err)
					jobs = append(jobs, j)
				}
				for _, j := range jobs {
					must(b, waitJob(b, j, 5*time.Minute))
				}
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "jobs/s")
		})
	}
}
