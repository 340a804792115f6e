package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus series. Each Server has its own
// registry, so several servers (tests) never collide.
type metrics struct {
	reg          *prometheus.Registry
	jobs         *prometheus.CounterVec // by outcome: ok, cached, error code
	jobSeconds   prometheus.Histogram
	stepSeconds  prometheus.Histogram
	previewsSent prometheus.Counter
	errors       *prometheus.CounterVec // by code
	uploads      prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reword_jobs_total", Help: "Edit requests finished, by outcome (ok, cached, or an error code).",
		}, []string{"outcome"}),
		jobSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reword_job_duration_seconds", Help: "Time from a worker taking an edit to its result.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		stepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reword_step_duration_seconds", Help: "Mean time of one diffusion step, per edit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		previewsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reword_previews_sent_total", Help: "Binary preview frames written to sockets.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reword_errors_total", Help: "Error messages sent to clients, by code.",
		}, []string{"code"}),
		uploads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reword_uploads_total", Help: "Photos accepted by POST /api/images.",
		}),
	}
	m.reg.MustRegister(m.jobs, m.jobSeconds, m.stepSeconds, m.previewsSent, m.errors, m.uploads,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reword_queue_waiting", Help: "Edits waiting for a worker."},
			func() float64 { w, _ := s.jobCounts(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reword_queue_running", Help: "Edits running."},
			func() float64 { _, r := s.jobCounts(); return float64(r) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reword_store_bytes", Help: "Bytes of stored images and result records, as this process indexes them."},
			func() float64 { _, _, b := s.store.Usage(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reword_uploads_in_progress", Help: "Photo uploads being read or decoded."},
			func() float64 { return float64(len(s.uploads)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "reword_sockets", Help: "Open WebSocket connections."},
			func() float64 { s.mu.Lock(); defer s.mu.Unlock(); return float64(len(s.conns)) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// jobCounts reports the edits of this server's sockets waiting (in
// admission or the stream) and running (on workers).
func (s *Server) jobCounts() (waiting, running int) { return s.exec.Len() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
