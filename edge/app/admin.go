package app

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/edge/cluster"
)

// maxListedUsers bounds GET /v1/rooms/{room}'s user list, and what each
// node lists of a room for it.
const maxListedUsers = cluster.MaxListedUsers

// adminAuth checks "Authorization: Bearer <token>" in constant time (the
// digests have one length whatever the token's).
type adminAuth struct {
	want [sha256.Size]byte
	on   bool
}

func newAdminAuth(token string) adminAuth {
	if token == "" {
		return adminAuth{}
	}
	return adminAuth{want: sha256.Sum256([]byte(token)), on: true}
}

func (t adminAuth) allows(r *http.Request) bool {
	if !t.on {
		return true
	}
	got := sha256.Sum256([]byte(bearer(r.Header.Get("Authorization"))))
	return subtle.ConstantTimeCompare(got[:], t.want[:]) == 1
}

// mountAdmin registers the /v1/ routes and JSON answers for every path
// nothing else serves. Routes are registered without a method so that a
// wrong method gets a JSON 405 (the mux's own is plain text).
func (a *App) mountAdmin(mux *http.ServeMux) {
	a.route(mux, "/v1/users/{id}/messages", map[string]http.HandlerFunc{http.MethodPost: a.pushUser})
	a.route(mux, "/v1/rooms/{room}/messages", map[string]http.HandlerFunc{http.MethodPost: a.pushRoom})
	a.route(mux, "/v1/broadcast", map[string]http.HandlerFunc{http.MethodPost: a.pushAll})
	a.route(mux, "/v1/users/{id}", map[string]http.HandlerFunc{http.MethodGet: a.getUser, http.MethodDelete: a.kickUser})
	a.route(mux, "/v1/rooms/{room}/history", map[string]http.HandlerFunc{http.MethodGet: a.getHistory})
	a.route(mux, "/v1/rooms/{room}", map[string]http.HandlerFunc{http.MethodGet: a.getRoom})
	a.route(mux, "/v1/stats", map[string]http.HandlerFunc{http.MethodGet: a.getStats})
	a.route(mux, "/v1/cluster", map[string]http.HandlerFunc{http.MethodGet: a.getCluster})
	mux.HandleFunc("/", a.unrouted)
}

// statusWriter remembers the status for the request counter.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (a *App) route(mux *http.ServeMux, pattern string, methods map[string]http.HandlerFunc) {
	allow := make([]string, 0, len(methods))
	for m := range methods {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	allowed := strings.Join(allow, ", ")
	a.m.adminRequests.WithLabelValues(pattern, "200") // on the first scrape, at zero
	mux.HandleFunc(pattern, func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw}
		defer func() { a.m.adminRequests.WithLabelValues(pattern, strconv.Itoa(w.status)).Inc() }()
		if !a.admin.allows(r) {
			unauthorized(w)
			return
		}
		h := methods[r.Method]
		if h == nil {
			w.Header().Set("Allow", allowed)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+allowed)
			return
		}
		h(w, r)
	})
}

// unrouted answers every path no route serves: 405 for the server's own
// GET endpoints, else 404 (401 first under /v1/ when a token is needed).
func (a *App) unrouted(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	route := "unknown"
	defer func() { a.m.adminRequests.WithLabelValues(route, strconv.Itoa(w.status)).Inc() }()
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		route = r.URL.Path
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: GET, HEAD")
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") && !a.admin.allows(r) {
		unauthorized(w)
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no route for "+r.URL.Path)
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="wsedge admin"`)
	writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong admin token")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal"}`)
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, struct {
		Error   string `json:"error"`
		Message string `json:"message,omitempty"`
	}{code, message})
}

type deliveredAnswer struct {
	Error     string `json:"error,omitempty"`
	Delivered int    `json:"delivered"`
	Nodes     int    `json:"nodes,omitempty"` // cluster mode: the nodes whose deliveries are counted
}

// readPush reads a push's body, one JSON value, with the whitespace around
// it trimmed. It answers the request itself and returns nil when it fails.
// While the server drains, pushes are still taken: the clients not closed
// yet get them, and the answer's "delivered" counts exactly who did.
func (a *App) readPush(w http.ResponseWriter, r *http.Request) []byte {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.AdminMaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "the body is over "+strconv.FormatInt(a.cfg.AdminMaxBody, 10)+" bytes")
			return nil
		}
		writeError(w, http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
		return nil
	}
	data := trimJSONSpace(body)
	if len(data) == 0 || !json.Valid(data) {
		writeError(w, http.StatusBadRequest, "bad_json", "the body must be one JSON value")
		return nil
	}
	// json.Valid accepts invalid UTF-8 in strings, but the body becomes a
	// text frame, which every browser must fail with 1007.
	if !utf8.Valid(data) {
		writeError(w, http.StatusBadRequest, "bad_json", "the body must be valid UTF-8")
		return nil
	}
	return data
}

// pathName reads a user id or room name from the path, answering 400 when
// it is not valid.
func pathName(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	v := r.PathValue(key)
	if !validName(v) {
		writeError(w, http.StatusBadRequest, "bad_request", key+" must be 1-128 printable ASCII characters")
		return "", false
	}
	return v, true
}

// POST /v1/users/{id}/messages
func (a *App) pushUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathName(w, r, "id")
	if !ok {
		return
	}
	data := a.readPush(w, r)
	if data == nil {
		return
	}
	payload := appendMessage(nil, "", "", data)
	var d cluster.Delivery
	n := 1 // connections that took it, when d is Delivered
	if a.cfg.ConnsPerUser > 1 {
		ch := make(chan struct{})
		if !a.deliverAll(id, payload, func(rd cluster.Delivery, rn int) { d, n = rd, rn; close(ch) }) {
			a.tooLargeForBus(w)
			return
		}
		<-ch // an admin handler may wait: at most the cluster timeout
		if d == cluster.NotConnected {
			a.m.dropped("not_connected", 1)
		}
	} else if conns := a.users.conns(id); conns != nil {
		d, n = a.writeUser(conns, payload)
	} else if !a.cluster.Fits(id, len(payload)) {
		a.tooLargeForBus(w)
		return
	} else {
		var err error
		if d, err = a.cluster.PushUser(id, payload); err != nil {
			a.unavailable(w, err)
			return
		}
		if d == cluster.NotConnected {
			a.m.dropped("not_connected", 1)
		}
	}
	switch d {
	case cluster.Delivered:
		writeJSON(w, http.StatusOK, deliveredAnswer{Delivered: n})
	case cluster.Dropped:
		writeJSON(w, http.StatusOK, deliveredAnswer{Delivered: 0})
	default:
		writeJSON(w, http.StatusNotFound, deliveredAnswer{Error: "not_connected"})
	}
}

// unavailable answers 503 when other nodes could not be asked or did not
// answer in time: the push may or may not have been delivered.
func (a *App) unavailable(w http.ResponseWriter, err error) {
	a.m.dropped("unavailable", 1)
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{"unavailable", "cluster: " + err.Error()})
}

// tooLargeForBus answers an admin push whose message cannot cross the bus:
// 413 like a body over -admin-max-body, not a 503 a backend would retry.
func (a *App) tooLargeForBus(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
		"the message is over what the cluster bus carries (NATS max payload "+strconv.FormatInt(a.cluster.MaxPayload(), 10)+" bytes)")
}

// frameAnswer adds the other nodes' deliveries of a room or broadcast push
// to this node's; a push that could not reach them counts as one drop.
func (a *App) frameAnswer(local, remote, nodes int, err error) deliveredAnswer {
	if err != nil {
		a.m.dropped("unavailable", 1)
	}
	return deliveredAnswer{Delivered: local + remote, Nodes: nodes}
}

// POST /v1/rooms/{room}/messages
func (a *App) pushRoom(w http.ResponseWriter, r *http.Request) {
	room, ok := pathName(w, r, "room")
	if !ok {
		return
	}
	data := a.readPush(w, r)
	if data == nil {
		return
	}
	if a.chist != nil {
		a.chist.pushRoom(w, room, data)
		return
	}
	fr, n, ok := a.publishRoom(room, "", data)
	if !ok {
		a.tooLargeForBus(w) // refused before any member gets it
		return
	}
	remote, nodes, err := a.cluster.PushRoom(room, fr)
	writeJSON(w, http.StatusOK, a.frameAnswer(n, remote, nodes, err))
}

// POST /v1/broadcast
func (a *App) pushAll(w http.ResponseWriter, r *http.Request) {
	data := a.readPush(w, r)
	if data == nil {
		return
	}
	f := a.srv.NewFanout(ws.OpText, appendMessage(nil, "", "", data))
	fr := f.Plain()
	if !a.cluster.Fits("", len(fr)) {
		a.tooLargeForBus(w) // refused before any client gets it
		return
	}
	n := a.broadcast(f)
	remote, nodes, err := a.cluster.PushAll(fr)
	writeJSON(w, http.StatusOK, a.frameAnswer(n, remote, nodes, err))
}

// GET /v1/users/{id}
func (a *App) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathName(w, r, "id")
	if !ok {
		return
	}
	if a.cfg.ConnsPerUser > 1 && a.cfg.Cluster != nil {
		switch info, ok, err := a.presence(id); {
		case ok:
			writeJSON(w, http.StatusOK, info)
		case err != nil:
			a.unavailable(w, err)
		default:
			writeError(w, http.StatusNotFound, "not_connected", "user "+id+" is not connected")
		}
		return
	}
	if conns := a.users.conns(id); conns != nil {
		writeJSON(w, http.StatusOK, a.userInfo(conns))
		return
	}
	switch body, err := a.cluster.User(id); err {
	case nil:
		writeRawJSON(w, http.StatusOK, body)
	case cluster.ErrNotConnected:
		writeError(w, http.StatusNotFound, "not_connected", "user "+id+" is not connected")
	default:
		a.unavailable(w, err)
	}
}

// DELETE /v1/users/{id}
func (a *App) kickUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathName(w, r, "id")
	if !ok {
		return
	}
	kicked := a.kickLocal(id)
	if !kicked || a.cfg.ConnsPerUser > 1 { // several connections: maybe on other nodes too
		remote, err := a.cluster.Kick(id)
		if err != nil && !kicked {
			a.unavailable(w, err)
			return
		}
		kicked = kicked || remote
	}
	if kicked {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeError(w, http.StatusNotFound, "not_connected", "user "+id+" is not connected")
}

// GET /v1/rooms/{room}
func (a *App) getRoom(w http.ResponseWriter, r *http.Request) {
	room, ok := pathName(w, r, "room")
	if !ok {
		return
	}
	members := a.rooms.members(room)
	ids := make([]string, len(members))
	for i, u := range members {
		ids[i] = u.id
	}
	remote, count := a.cluster.RoomMembers(room)
	ids = append(ids, remote...)
	count += len(members)
	slices.Sort(ids)
	truncated := len(ids) > maxListedUsers || len(ids) < count // a node lists at most maxListedUsers
	ids = ids[:min(len(ids), maxListedUsers)]                  // nodes may list fewer than they count
	writeJSON(w, http.StatusOK, struct {
		Room      string   `json:"room"`
		Members   int      `json:"members"`
		Users     []string `json:"users"`
		Truncated bool     `json:"truncated,omitempty"`
	}{room, count, ids, truncated})
}

// GET /v1/stats
func (a *App) getStats(w http.ResponseWriter, _ *http.Request) {
	st := a.srv.Stats()
	writeJSON(w, http.StatusOK, struct {
		Connections        int64   `json:"connections"`
		TCPConnections     int64   `json:"tcp_connections"`
		Users              int64   `json:"users"`
		Rooms              int64   `json:"rooms"`
		MessagesIn         int64   `json:"messages_in"`
		MessagesOut        int64   `json:"messages_out"`
		MessagesDropped    int64   `json:"messages_dropped"`
		SlowConsumerCloses int64   `json:"slow_consumer_closes"`
		UptimeSeconds      float64 `json:"uptime_seconds"`
		Goroutines         int     `json:"goroutines"`
		PoolRunning        int     `json:"pool_running"`
		PoolCapacity       int     `json:"pool_capacity"`
		Draining           bool    `json:"draining"`
	}{
		Connections:        st.Connections,
		TCPConnections:     st.TCPConnections,
		Users:              a.users.count.Load(),
		Rooms:              a.rooms.count.Load(),
		MessagesIn:         st.MessagesIn,
		MessagesOut:        st.MessagesOut,
		MessagesDropped:    st.MessagesDropped,
		SlowConsumerCloses: st.SlowConsumerCloses,
		UptimeSeconds:      st.Uptime.Seconds(),
		Goroutines:         runtime.NumGoroutine(),
		PoolRunning:        st.PoolRunning,
		PoolCapacity:       st.PoolCapacity,
		Draining:           a.srv.Draining(),
	})
}

// GET /v1/cluster: this node, the live nodes it knows, and whether NATS is
// reachable ("ok") or not ("degraded": local clients are still served);
// {"status":"ok","mode":"single"} on a single node.
func (a *App) getCluster(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.cluster.Status())
}
