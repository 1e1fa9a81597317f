package app

import (
	"net/http"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/edge"
	"github.com/wsedge/wsedge/frame"
)

// echo serves GET /echo when edge.Config.Echo is on (conformance suites and
// benchmarks): every message comes back. It admits a client as /ws does
// (same origin list, and with a JWT key the same token), but keeps no user
// record: an idle /echo connection costs the transport alone, and it
// joins nothing and is not a user anywhere.
type echo struct{ a *App }

var _ edge.Handler = echo{}

func (e echo) Accept(_ *edge.Conn, req *frame.Request) error {
	if err := e.a.checkOrigin(req.Origin); err != nil {
		return err
	}
	if e.a.verify != nil {
		_, _, _, err := e.a.identify(req)
		return err
	}
	return nil
}

func (echo) OnOpen(*edge.Conn)                 {}
func (echo) OnClose(*edge.Conn, ws.StatusCode) {}
func (echo) OnMessage(c *edge.Conn, op ws.OpCode, p []byte) {
	_ = c.WriteMessage(op, p)
}

// checkOrigin refuses (403) a browser whose Origin is not allowed; a
// request without Origin (not a browser) is always allowed.
func (a *App) checkOrigin(origin string) error {
	if a.origins == nil || origin == "" {
		return nil
	}
	if _, ok := a.origins[origin]; !ok {
		a.m.authFailure("origin")
		return frame.NewHTTPError(http.StatusForbidden, "origin not allowed")
	}
	return nil
}
