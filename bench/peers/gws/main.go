// Command gws is the comparison server on lxzan/gws: net/http upgrade, one
// ReadLoop goroutine per connection, concurrency-safe writes.
package main

import (
	"log"
	"net/http"
	"time"

	"github.com/lxzan/gws"

	"github.com/wsedge/wsedge/bench/peers/internal/peer"
)

type handler struct {
	gws.BuiltinEventHandler
	hub  *peer.Hub
	echo bool
}

// sender adapts a gws connection to the hub.
type sender struct{ c *gws.Conn }

func (s sender) WriteText(msg []byte) error { return s.c.WriteMessage(gws.OpcodeText, msg) }

func (h *handler) OnOpen(c *gws.Conn) {
	h.hub.Opened()
	if !h.echo {
		h.hub.Add(sender{c})
	}
}

func (h *handler) OnClose(c *gws.Conn, err error) {
	if !h.echo {
		h.hub.Remove(sender{c})
	}
	h.hub.Closed()
}

func (h *handler) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if h.echo {
		_ = c.WriteMessage(m.Opcode, m.Bytes())
	}
}

func main() {
	f := peer.ParseFlags("gws")
	hub := peer.NewHub()
	peer.ServeAdmin(f.Admin, hub)
	opt := func() *gws.ServerOption {
		o := &gws.ServerOption{ReadBufferSize: 1024, WriteBufferSize: 1024}
		// Its defaults otherwise: no context takeover either way, so
		// compressors come from a shared pool per message.
		o.PermessageDeflate.Enabled = f.Compression
		return o
	}
	echo := gws.NewUpgrader(&handler{hub: hub, echo: true}, opt())
	ws := gws.NewUpgrader(&handler{hub: hub}, opt())
	serve := func(up *gws.Upgrader, needUser bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if needUser && r.URL.Query().Get("user") == "" {
				http.Error(w, "?user= required", http.StatusUnauthorized)
				return
			}
			c, err := up.Upgrade(w, r)
			if err != nil {
				return
			}
			go c.ReadLoop()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", serve(echo, false))
	mux.HandleFunc("/ws", serve(ws, true))
	srv := &http.Server{Addr: f.Addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Fatal(srv.ListenAndServe()) }()
	log.Printf("gws peer on %s, admin on %s", f.Addr, f.Admin)
	peer.WaitForSignal()
}
