package app

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wsedge/wsedge/internal/defaults"
)

// Room policies (Config.RoomPolicy, -room-policy).
const (
	PolicyOpen   = "open"   // any user may join any room and publish to it
	PolicyClaims = "claims" // the connection token's rooms/publish patterns, or a room token
	PolicyHook   = "hook"   // the backend at JoinHook decides each join
)

// codeForbidden answers a join or publish the room policy refuses.
const codeForbidden = "forbidden"

// maxPatterns bounds the patterns one token may carry in rooms or publish:
// they are kept with the connection for its life.
const maxPatterns = 256

func (c *Config) policyDefaults(d Config) error {
	if c.RoomPolicy == "" {
		c.RoomPolicy = d.RoomPolicy
	}
	defaults.Positive(&c.HookConcurrency, d.HookConcurrency)
	defaults.Positive(&c.HookQueue, d.HookQueue)
	defaults.Positive(&c.HookTimeout, d.HookTimeout)
	switch {
	case c.HookCache == 0:
		c.HookCache = d.HookCache
	case c.HookCache < 0:
		c.HookCache = 0 // off; from here on 0 means off
	}
	defaults.Positive(&c.HookCacheSize, d.HookCacheSize)
	defaults.Positive(&c.ConnsPerUser, d.ConnsPerUser)
	tokens := len(c.JWTSecret) > 0 || len(c.JWTPublicKeyPEM) > 0
	switch c.RoomPolicy {
	case PolicyOpen:
	case PolicyClaims:
		if !tokens {
			return errors.New("room policy claims needs a JWT key (secret or public key): the rooms and publish claims are read from the token")
		}
	case PolicyHook:
		u, err := url.Parse(c.JoinHook)
		if c.JoinHook == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("room policy hook needs a join hook http(s) URL (-join-hook), got %q", c.JoinHook)
		}
	default:
		return fmt.Errorf("room policy %q: want open, claims or hook", c.RoomPolicy)
	}
	if c.JoinHook != "" && c.RoomPolicy != PolicyHook {
		return errors.New("a join hook is only called with room policy hook (-room-policy hook)")
	}
	return nil
}

// connClaims is a connection token under PolicyClaims: the rooms the user
// may join and publish to, as patterns (matchPattern).
type connClaims struct {
	jwt.RegisteredClaims
	Rooms   []string `json:"rooms"`
	Publish []string `json:"publish"`
}

// roomClaims is a room token: one room granted to one user (sub).
type roomClaims struct {
	jwt.RegisteredClaims
	Room    string `json:"room"`
	Publish bool   `json:"publish"`
}

// grants are a claims connection's patterns, kept for its life; only
// PolicyClaims connections carry them.
type grants struct {
	rooms, publish []string
}

// newGrants checks a token's patterns: nil, "" when there are none.
func newGrants(c *connClaims) (*grants, string) {
	if len(c.Rooms) > maxPatterns || len(c.Publish) > maxPatterns {
		return nil, fmt.Sprintf("token has more than %d room patterns", maxPatterns)
	}
	for _, p := range append(c.Rooms[:len(c.Rooms):len(c.Rooms)], c.Publish...) {
		if p != "*" && !validName(strings.TrimSuffix(p, "*")) {
			return nil, "token room pattern " + fmt.Sprintf("%q", p) + " is not a room name or a prefix ending in *"
		}
	}
	if len(c.Rooms) == 0 && len(c.Publish) == 0 {
		return nil, ""
	}
	return &grants{rooms: c.Rooms, publish: c.Publish}, ""
}

// matchPattern reports whether room matches one of patterns: a room name,
// or a prefix ending in "*" ("team-7/*", "*" for every room).
func matchPattern(patterns []string, room string) bool {
	for _, p := range patterns {
		if p == room || (strings.HasSuffix(p, "*") && strings.HasPrefix(room, p[:len(p)-1])) {
			return true
		}
	}
	return false
}

// decision is the room policy's answer to one join.
type decision uint8

const (
	denied      decision = iota // forbidden
	allowed                     // may join, not publish
	allowedPub                  // may join and publish
	unavailable                 // the hook could not be asked or answered nonsense
	pending                     // the hook was asked; the answer comes to OnWake
)

// decisionLabel is the decision label of wsedge_room_policy_decisions_total.
func (d decision) label() string {
	switch d {
	case allowed, allowedPub:
		return "allow"
	case denied:
		return "forbidden"
	}
	return "unavailable"
}

// authorizeClaims decides a join under PolicyClaims: the connection's
// patterns, else the join's room token.
func (a *App) authorizeClaims(u *user, room, token string) (decision, string) {
	g := u.grants()
	if g != nil && matchPattern(g.rooms, room) {
		if matchPattern(g.publish, room) {
			return allowedPub, ""
		}
		return allowed, ""
	}
	if token == "" {
		return denied, "your token does not grant room " + room
	}
	var rc roomClaims
	if reason, why := a.verify.check(token, &rc, &rc.RegisteredClaims); reason != "" {
		return denied, "room token: " + why
	}
	switch {
	case rc.Subject != u.id:
		return denied, "room token is for another user"
	case rc.Room != room:
		return denied, "room token is for another room"
	case rc.Publish || (g != nil && matchPattern(g.publish, room)):
		return allowedPub, ""
	}
	return allowed, ""
}

// mayPublish reports whether the member u may publish to room; open rooms
// let every member publish.
func (a *App) mayPublish(u *user, room string) (member, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := slices.Index(u.rooms, room)
	if i < 0 {
		return false, false
	}
	if a.cfg.RoomPolicy == PolicyOpen {
		return true, true
	}
	if g := u.ext.grantsOrNil(); g != nil && matchPattern(g.publish, room) {
		return true, true
	}
	return true, u.ext.canPublish(i)
}
