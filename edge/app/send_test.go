package app

import (
	"net/http"
	"testing"
)

func TestSendDirect(t *testing.T) {
	ts := start(t, Config{}, nil)
	alice, bob := ts.dial("alice"), ts.dial("bob")
	alice.send(`{"type":"send","to":"bob","data":{"b":[1, 2.50, "x"]} ,"id":"c1"}`)
	bob.expect(`{"type":"message","from":"alice","data":{"b":[1, 2.50, "x"]}}`)
	alice.expect(`{"type":"ack","id":"c1"}`)

	// Without an id: no ack; the next message proves nothing else came.
	alice.send(`{"type":"send","to":"bob","data":"hi"}`)
	bob.expect(`{"type":"message","from":"alice","data":"hi"}`)
	alice.send(`{"type":"send","to":"carol","data":1,"id":7}`)
	alice.expect(`{"type":"error","id":7,"code":"not_connected","message":"user carol is not connected"}`)
}

func TestAdminPushUser(t *testing.T) {
	ts := start(t, Config{}, nil)
	bob := ts.dial("bob")
	if got := ts.admin("POST", "/v1/users/bob/messages", `{"n": 1}`+"\n", http.StatusOK); got != `{"delivered":1}`+"\n" {
		t.Fatalf("answer %q", got)
	}
	bob.expect(`{"type":"message","data":{"n": 1}}`)
	if got := ts.admin("POST", "/v1/users/carol/messages", `1`, http.StatusNotFound); got != `{"error":"not_connected","delivered":0}`+"\n" {
		t.Fatalf("answer %q", got)
	}
}
