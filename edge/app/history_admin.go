package app

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// historyPageDefault is a page's size when the request sets no limit.
const historyPageDefault = 100

// historyPage is GET /v1/rooms/{room}/history's answer.
type historyPage struct {
	Room     string            `json:"room"`
	Epoch    string            `json:"epoch"`
	Offset   int64             `json:"offset"`         // the newest message's offset (0: none yet)
	Messages []json.RawMessage `json:"messages"`       // as clients received them, "offset" included, oldest first
	Gap      bool              `json:"gap,omitempty"`  // messages after since already left the history
	Next     int64             `json:"next,omitempty"` // more after this page: ask again with since=next
}

// GET /v1/rooms/{room}/history?since=N&limit=M: the kept messages after
// offset N (default 0: all), at most M (default 100, at most 1000).
func (a *App) getHistory(w http.ResponseWriter, r *http.Request) {
	room, ok := pathName(w, r, "room")
	if !ok {
		return
	}
	if a.hist == nil && a.chist == nil {
		writeError(w, http.StatusNotFound, "history_off", "room history is off on this node (-history-size 0)")
		return
	}
	since, limit := int64(0), historyPageDefault
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "since must be an integer >= 0")
			return
		}
		since = n
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > historyPageMax {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be an integer from 1 to "+strconv.Itoa(historyPageMax))
			return
		}
		limit = n
	}
	if a.chist != nil {
		a.chist.history(w, room, since, limit)
		return
	}
	page := historyPage{Room: room, Messages: []json.RawMessage{}}
	h := a.hist.lock(room, false)
	if h == nil {
		page.Epoch = a.hist.base()
		page.Gap = since > 0
		writeJSON(w, http.StatusOK, page)
		return
	}
	a.hist.expire(h, time.Now().UnixNano())
	page.Epoch, page.Offset = h.epoch, h.last
	from := max(since+1, h.oldest())
	page.Gap = since+1 < h.oldest()
	for off := from; off <= h.last && len(page.Messages) < limit; off++ {
		page.Messages = append(page.Messages, h.at(off).payload) // never modified once kept
	}
	if last := from + int64(len(page.Messages)) - 1; last < h.last {
		page.Next = last
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, page)
}
