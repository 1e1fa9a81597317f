// Package peer is what the comparison servers share: flags, the admin
// listener (/metrics and POST /v1/broadcast) and the registry of /ws
// connections that a broadcast reaches.
package peer

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxBody bounds a broadcast body.
const maxBody = 1 << 20

// Flags are the command line every peer takes.
type Flags struct {
	Addr  string
	Admin string
	// Compression turns the library's permessage-deflate on, where the
	// peer supports it (wsbench compare -compression).
	Compression bool
}

// ParseFlags reads -addr, -admin and -compression.
func ParseFlags(name string) Flags {
	var f Flags
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&f.Addr, "addr", ":8080", "WebSocket listener: /echo and /ws")
	fs.StringVar(&f.Admin, "admin", "127.0.0.1:9090", "admin listener: /metrics and POST /v1/broadcast")
	fs.BoolVar(&f.Compression, "compression", false, "accept permessage-deflate offers (the peers that support it)")
	_ = fs.Parse(os.Args[1:])
	return f
}

// Sender is a /ws connection as a broadcast sees it. WriteText must be safe
// to call concurrently with the connection's own reads and writes.
type Sender interface {
	WriteText(msg []byte) error
}

// Hub counts open WebSocket connections and holds the /ws ones.
type Hub struct {
	open atomic.Int64
	mu   sync.RWMutex
	ws   map[Sender]struct{}
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{ws: map[Sender]struct{}{}} }

// Opened and Closed count every WebSocket connection (/echo and /ws).
func (h *Hub) Opened() { h.open.Add(1) }
func (h *Hub) Closed() { h.open.Add(-1) }

// Add and Remove register a /ws connection for broadcasts.
func (h *Hub) Add(s Sender) {
	h.mu.Lock()
	h.ws[s] = struct{}{}
	h.mu.Unlock()
}

func (h *Hub) Remove(s Sender) {
	h.mu.Lock()
	delete(h.ws, s)
	h.mu.Unlock()
}

// Broadcast writes msg to every /ws connection, split over GOMAXPROCS
// goroutines, and returns how many writes succeeded.
func (h *Hub) Broadcast(msg []byte) int {
	h.mu.RLock()
	all := make([]Sender, 0, len(h.ws))
	for s := range h.ws {
		all = append(all, s)
	}
	h.mu.RUnlock()
	parts := runtime.GOMAXPROCS(0)
	per := (len(all) + parts - 1) / parts
	var delivered atomic.Int64
	var wg sync.WaitGroup
	for start := 0; start < len(all); start += per {
		chunk := all[start:min(start+per, len(all))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for _, s := range chunk {
				if s.WriteText(msg) == nil {
					n++
				}
			}
			delivered.Add(int64(n))
		}()
	}
	wg.Wait()
	return int(delivered.Load())
}

// ServeAdmin serves /metrics and POST /v1/broadcast on addr until the
// process ends.
func ServeAdmin(addr string, h *Hub) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wsedge_connections", Help: "Open WebSocket connections.",
		}, func() float64 { return float64(h.open.Load()) }),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /v1/broadcast", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil || !json.Valid(body) {
			http.Error(w, "body must be one JSON value", http.StatusBadRequest)
			return
		}
		msg := make([]byte, 0, len(body)+32)
		msg = append(msg, `{"type":"message","data":`...)
		msg = append(msg, body...)
		msg = append(msg, '}')
		n := h.Broadcast(msg)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"delivered\":%d}\n", n)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("admin listener %s: %v", addr, err)
		}
	}()
}

// WaitForSignal blocks until SIGINT or SIGTERM.
func WaitForSignal() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	<-c
}
