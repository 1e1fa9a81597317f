// Command deflatemeasure measures what permessage-deflate costs a running
// wsedge: idle memory per connection, and wire bytes and server CPU per
// fan-out delivery, with gorilla clients that offer compression or not.
// It is a stopgap until wsbench's own client offers deflate; it reads the
// server's figures from its /metrics, so run wsedge on loopback first:
//
//	wsedge -addr 127.0.0.1:18080 -admin 127.0.0.1:19090 -echo [-compression=false]
//	deflatemeasure -mode idle -n 19000 -compression
//	deflatemeasure -mode fanout -n 19000 -messages 50 -compression
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	var (
		addr        = flag.String("addr", "127.0.0.1:18080", "wsedge WebSocket address")
		admin       = flag.String("admin", "127.0.0.1:19090", "wsedge admin address")
		mode        = flag.String("mode", "idle", "idle (/echo connections, memory) or fanout (/ws room, CPU and bytes)")
		n           = flag.Int("n", 1000, "connections (at most 19,000 with a 20,000 open-file limit)")
		messages    = flag.Int("messages", 50, "fanout: room pushes of a 1 KiB JSON payload")
		compression = flag.Bool("compression", false, "offer permessage-deflate, as browsers do")
		timeout     = flag.Duration("timeout", 5*time.Minute, "give up after this long")
	)
	flag.Parse()
	time.AfterFunc(*timeout, func() { log.Fatal("timeout") })
	metricsURL := "http://" + *admin + "/metrics"
	before := scrape(metricsURL)
	var received atomic.Int64
	conns := dialAll(*addr, *mode, *n, *compression, &received)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	switch *mode {
	case "idle":
		waitFor(func() bool { return scrape(metricsURL)["wsedge_connections"] >= float64(*n) })
		// Let the server collect what the handshakes left behind.
		time.Sleep(3 * time.Second)
		after := scrape(metricsURL)
		perConn := func(k string) float64 { return (after[k] - before[k]) / float64(*n) }
		fmt.Printf("idle compression=%v n=%d deflate_conns=%.0f heap_inuse/conn=%.0f B rss/conn=%.0f B\n", *compression, *n,
			after["wsedge_deflate_connections"], perConn("go_memstats_heap_inuse_bytes"), perConn("process_resident_memory_bytes"))
	case "fanout":
		payload := body(1024)
		start := scrape(metricsURL)
		t0 := time.Now()
		for range *messages {
			resp, err := http.Post("http://"+*admin+"/v1/rooms/lobby/messages", "application/json", strings.NewReader(payload))
			if err != nil {
				log.Fatal(err)
			}
			resp.Body.Close()
		}
		want := int64(*n) * int64(*messages)
		waitFor(func() bool { return received.Load() >= want })
		end := scrape(metricsURL)
		d := float64(want)
		fmt.Printf("fanout compression=%v n=%d messages=%d wall=%v server_cpu/delivery=%.0f ns wire_bytes/delivery=%.0f compressed_encodes=%.0f\n",
			*compression, *n, *messages, time.Since(t0).Round(time.Millisecond),
			(end["process_cpu_seconds_total"]-start["process_cpu_seconds_total"])*1e9/d,
			(end["wsedge_bytes_sent_total"]-start["wsedge_bytes_sent_total"])/d,
			end["wsedge_deflate_fanout_encodes_total"]-start["wsedge_deflate_fanout_encodes_total"])
	default:
		log.Fatalf("mode %q: want idle or fanout", *mode)
	}
}

// dialAll opens n connections, 100 at a time; in fanout mode each joins
// the room and then counts the messages it reads.
func dialAll(addr, mode string, n int, compression bool, received *atomic.Int64) []*websocket.Conn {
	d := websocket.Dialer{EnableCompression: compression, HandshakeTimeout: 30 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	conns := make([]*websocket.Conn, n)
	sem := make(chan struct{}, 100)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			url := "ws://" + addr + "/echo"
			if mode == "fanout" {
				url = "ws://" + addr + "/ws?user=u" + strconv.Itoa(i)
			}
			c, _, err := d.Dial(url, nil)
			if err != nil {
				log.Fatalf("dial %d: %v", i, err)
			}
			conns[i] = c
			if mode != "fanout" {
				return
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"join","room":"lobby","id":1}`)); err != nil {
				log.Fatal(err)
			}
			if _, _, err := c.ReadMessage(); err != nil { // the ack
				log.Fatal(err)
			}
			go func() {
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
					received.Add(1)
				}
			}()
		}()
	}
	wg.Wait()
	return conns
}

// body is a JSON chat payload of about n bytes.
func body(n int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n-80; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","text":"hello from the lobby","likes":%d}`, i, i%7, i*3)
	}
	b.WriteString(`]}`)
	return b.String()
}

func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape reads the unlabelled samples of a /metrics page.
func scrape(url string) map[string]float64 {
	resp, err := http.Get(url)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	if sc.Err() != nil {
		fmt.Fprintln(os.Stderr, sc.Err())
	}
	return out
}
