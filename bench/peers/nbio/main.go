// Command nbio is the comparison server on lesismal/nbio: its own epoll
// engine parses HTTP and WebSocket, message callbacks run on a pool, no
// goroutine per connection.
package main

import (
	"log"
	"net/http"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/wsedge/wsedge/bench/peers/internal/peer"
)

// sender adapts an nbio connection to the hub.
type sender struct{ c *websocket.Conn }

func (s sender) WriteText(msg []byte) error { return s.c.WriteMessage(websocket.TextMessage, msg) }

func main() {
	f := peer.ParseFlags("nbio")
	hub := peer.NewHub()
	peer.ServeAdmin(f.Admin, hub)

	echo := websocket.NewUpgrader()
	echo.EnableCompression(f.Compression)
	echo.CheckOrigin = func(*http.Request) bool { return true }
	echo.OnOpen(func(*websocket.Conn) { hub.Opened() })
	echo.OnClose(func(*websocket.Conn, error) { hub.Closed() })
	echo.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		_ = c.WriteMessage(mt, data)
	})

	ws := websocket.NewUpgrader()
	ws.EnableCompression(f.Compression)
	ws.CheckOrigin = func(*http.Request) bool { return true }
	ws.OnOpen(func(c *websocket.Conn) { hub.Opened(); hub.Add(sender{c}) })
	ws.OnClose(func(c *websocket.Conn, _ error) { hub.Remove(sender{c}); hub.Closed() })
	ws.OnMessage(func(*websocket.Conn, websocket.MessageType, []byte) {})

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		_, _ = echo.Upgrade(w, r, nil)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("user") == "" {
			http.Error(w, "?user= required", http.StatusUnauthorized)
			return
		}
		_, _ = ws.Upgrade(w, r, nil)
	})
	engine := nbhttp.NewEngine(nbhttp.Config{Network: "tcp", Addrs: []string{f.Addr}, Handler: mux})
	if err := engine.Start(); err != nil {
		log.Fatalf("nbio engine on %s: %v", f.Addr, err)
	}
	log.Printf("nbio peer on %s, admin on %s", f.Addr, f.Admin)
	peer.WaitForSignal()
	engine.Stop()
}
