package chat

import (
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of their own
// so that two servers in one process (as in the specs) don't collide.
type metrics struct {
	reg           *prometheus.Registry
	received      prometheus.Counter
	deliveries    prometheus.Counter
	bytesOut      prometheus.Counter
	writes        prometheus.Counter
	dropped       prometheus.Counter
	disconnects   *prometheus.CounterVec
	refused       *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	streamRefused *prometheus.CounterVec
	// eventsUnpublished counts room events a cluster node delivered to
	// its own clients only (see announce.go).
	eventsUnpublished prometheus.Counter
	commitSeconds     prometheus.Histogram
	commitBatch       prometheus.Histogram
	deliverySeconds   prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natter_messages_received_total", Help: "Chat messages accepted from clients."}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natter_deliveries_total", Help: "Events queued for clients (one per receiver)."}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natter_bytes_written_total", Help: "Bytes written to clients."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natter_writes_total", Help: "Writes to clients; deliveries per write is how well writes coalesce."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natter_messages_dropped_total", Help: "Queued events dropped because their client read too slowly."}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natter_disconnects_total", Help: "Clients gone, by reason."}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natter_connections_refused_total", Help: "Connections refused before they became clients, by reason."}, []string{"reason"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natter_lines_rejected_total", Help: "Lines refused, by error code."}, []string{"code"}),
		streamRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "natter_stream_messages_refused_total", Help: "Messages from the cluster's stream refused, neither delivered nor kept, by reason."}, []string{"reason"}),
		eventsUnpublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "natter_events_unpublished_total", Help: "Joins, parts, renames and quits a cluster node could not hand the cluster (full outbox, or storing failed), so delivered to its own clients only."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "natter_store_commit_seconds", Help: "Time to store one batch of messages durably, from its write to the end of the sync that covered it.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
		commitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "natter_store_commit_messages", Help: "Messages stored per batch (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		deliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "natter_delivery_latency_seconds", Help: "Time from accepting a message to queueing it for its receivers, storage included.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16)}),
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(m.received, m.deliveries, m.bytesOut, m.writes, m.dropped, m.disconnects, m.refused,
		m.rejected, m.streamRefused, m.eventsUnpublished, m.commitSeconds, m.commitBatch, m.deliverySeconds,
		gauge("natter_clients", "Connected clients.", func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.sessions))
		}),
		gauge("natter_rooms", "Rooms.", func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return float64(len(s.rooms))
		}),
		gauge("natter_queued_events", "Events waiting in clients' outbound queues.", func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			n := 0
			for ss := range s.sessions {
				ss.mu.Lock()
				n += ss.out.n
				ss.mu.Unlock()
			}
			return float64(n)
		}),
		gauge("natter_queued_bytes", "Bytes of the events waiting in clients' outbound queues (an event shared by several queues counts in each).", func() float64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			n := 0
			for ss := range s.sessions {
				ss.mu.Lock()
				n += ss.out.bytes
				ss.mu.Unlock()
			}
			return float64(n)
		}),
	)
	return m
}

// AdminHandler serves the server's operational endpoints: Prometheus
// metrics at /metrics, /healthz (the process is up), /readyz (the server
// accepts clients: 503 once it is shutting down, or while a cluster node
// does not receive the cluster's messages), and net/http/pprof under
// /debug/pprof/. Serve it on a loopback or otherwise private address.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		closing, lost := s.closing, s.clusterLost
		s.mu.Unlock()
		switch {
		case closing:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		case lost:
			http.Error(w, "cluster delivery stopped", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
