// Command gorilla is the comparison server in the most common Go style:
// gorilla/websocket on net/http, one goroutine per connection blocked in
// ReadMessage, writes under a per-connection mutex.
package main

import (
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/bench/peers/internal/peer"
)

const writeTimeout = 10 * time.Second

// conn serialises writes: gorilla allows one writer at a time.
type conn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (c *conn) write(op int, msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(op, msg)
}

func (c *conn) WriteText(msg []byte) error { return c.write(websocket.TextMessage, msg) }

func main() {
	f := peer.ParseFlags("gorilla")
	hub := peer.NewHub()
	peer.ServeAdmin(f.Admin, hub)
	// Small buffers: the server holds many idle connections.
	// EnableCompression: no context takeover, a flate writer per message.
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, CheckOrigin: func(*http.Request) bool { return true },
		EnableCompression: f.Compression}

	serve := func(register bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if register && r.URL.Query().Get("user") == "" {
				http.Error(w, "?user= required", http.StatusUnauthorized)
				return
			}
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			c := &conn{ws: ws}
			hub.Opened()
			if register {
				hub.Add(c)
			}
			defer func() {
				if register {
					hub.Remove(c)
				}
				hub.Closed()
				_ = ws.Close()
			}()
			for {
				op, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if !register && c.write(op, msg) != nil {
					return
				}
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", serve(false))
	mux.HandleFunc("/ws", serve(true))
	srv := &http.Server{Addr: f.Addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Fatal(srv.ListenAndServe()) }()
	log.Printf("gorilla peer on %s, admin on %s", f.Addr, f.Admin)
	peer.WaitForSignal()
}
