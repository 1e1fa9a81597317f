package edge

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startAdmin serves /healthz, /readyz, /metrics (and /debug/pprof/ with
// Pprof) on the admin listener, plus whatever the application mounted on
// Mux.
func (s *Server) startAdmin() error {
	if s.cfg.AdminAddr == "off" {
		return nil
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		if s.readiness != nil {
			if err := s.readiness(); err != nil {
				// Still 200: the node serves its own clients; the body and
				// the application's metrics say what is missing.
				_, _ = fmt.Fprintf(w, "degraded: %v\n", err)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	// Uncompressed: the page is about 13 KB, and gzip would cost some 400 KB
	// of garbage per scrape (a fresh compressor whenever a GC emptied the
	// pool), which on a lean server is heap growth every scrape interval.
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{Registry: s.metrics.reg, DisableCompression: true}))
	if s.cfg.Pprof {
		// No cmdline: the command line carries the secrets (-jwt-secret,
		// -admin-token). Index would serve it too, so it is refused first.
		s.mux.Handle("/debug/pprof/cmdline", http.NotFoundHandler())
		s.mux.Handle("/debug/pprof/", s.adminOnly(http.HandlerFunc(pprof.Index)))
		s.mux.Handle("/debug/pprof/profile", s.adminOnly(http.HandlerFunc(pprof.Profile)))
		s.mux.Handle("/debug/pprof/symbol", s.adminOnly(http.HandlerFunc(pprof.Symbol)))
		s.mux.Handle("/debug/pprof/trace", s.adminOnly(http.HandlerFunc(pprof.Trace)))
	}
	ln, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listen on %s: %w", s.cfg.AdminAddr, err)
	}
	s.adminLn = ln
	s.admin = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	return nil
}

// adminOnly asks for "Authorization: Bearer <AdminToken>" when a token is
// set (compared in constant time, so the answer's timing does not leak it).
func (s *Server) adminOnly(h http.Handler) http.Handler {
	if s.cfg.AdminToken == "" {
		return h
	}
	want := []byte("Bearer " + s.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
