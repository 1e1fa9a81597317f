package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// The worker protocol between the driver and a child process:
//
//	driver -> child stdin:  one JSON workerInit line, then "start" and
//	                        "stop" lines; EOF means stop.
//	child -> driver stdout: JSON workerEvent lines: progress (every 200ms),
//	                        ready once, then a result or an error, last.
//
// A child ignores Ctrl-C (the terminal sends it to the whole process group)
// and stops on the driver's word, so that an interrupted run still gets
// every child's partial result.

// workerInit is the first line a child reads. Secrets travel here, never on
// a command line where ps would show them.
type workerInit struct {
	Config     Config `json:"config"`
	JWTSecret  string `json:"jwt_secret,omitempty"`
	AdminToken string `json:"admin_token,omitempty"`
}

type workerEvent struct {
	Progress *Progress `json:"progress,omitempty"`
	Ready    bool      `json:"ready,omitempty"`
	Result   *Result   `json:"result,omitempty"`
	Error    string    `json:"error,omitempty"`
}

const progressEvery = 200 * time.Millisecond

// ServeWorker runs one worker process: it reads its configuration and
// commands from in and writes events to out. It returns when the worker has
// written its result; ctx bounds the whole worker.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("worker: read configuration: %w", err)
	}
	var init workerInit
	if err := json.Unmarshal(line, &init); err != nil {
		return fmt.Errorf("worker: parse configuration: %w", err)
	}
	cfg := init.Config
	cfg.JWTSecret, cfg.AdminToken = init.JWTSecret, init.AdminToken

	var wmu sync.Mutex
	emit := func(ev workerEvent) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := out.Write(append(encodeJSON(ev), '\n'))
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline+10*time.Second)
	defer cancel()
	h, err := startLocal(ctx, cfg)
	if err != nil {
		_ = emit(workerEvent{Error: err.Error()})
		return err
	}
	go func() { // commands: "start"; "stop", EOF or anything else stops
		for {
			cmd, err := br.ReadString('\n')
			if err == nil && cmd == "start\n" {
				h.start()
				continue
			}
			h.stop()
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	readyC := h.ready()
	for {
		select {
		case <-readyC:
			readyC = nil
			p := h.progress()
			_ = emit(workerEvent{Progress: &p})
			if err := emit(workerEvent{Ready: true}); err != nil {
				h.stop()
			}
		case <-tick.C:
			p := h.progress()
			if err := emit(workerEvent{Progress: &p}); err != nil {
				h.stop() // the driver is gone
			}
		case <-h.done:
			res, _ := h.result()
			return emit(workerEvent{Result: res})
		}
	}
}

// childHandle drives a worker in a child process.
type childHandle struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	inMu   sync.Mutex
	readyC chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	prog Progress
	res  *Result
	err  error
}

func startChild(cmd *exec.Cmd, cfg Config) (*childHandle, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	h := &childHandle{cmd: cmd, in: in, readyC: make(chan struct{}), done: make(chan struct{})}
	init := workerInit{Config: cfg, JWTSecret: cfg.JWTSecret, AdminToken: cfg.AdminToken}
	if _, err := in.Write(append(encodeJSON(init), '\n')); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("configure worker: %w", err)
	}
	go h.readEvents(out)
	return h, nil
}

func (h *childHandle) readEvents(out io.Reader) {
	defer close(h.done)
	readyOnce := sync.OnceFunc(func() { close(h.readyC) })
	defer readyOnce() // a dead child must not hold the driver at "ready"
	dec := json.NewDecoder(out)
	var res *Result
	var failure error
	for {
		var ev workerEvent
		if err := dec.Decode(&ev); err != nil {
			if !errors.Is(err, io.EOF) {
				failure = fmt.Errorf("read worker output: %w", err)
			}
			break
		}
		switch {
		case ev.Progress != nil:
			h.mu.Lock()
			h.prog = *ev.Progress
			h.mu.Unlock()
		case ev.Ready:
			readyOnce()
		case ev.Result != nil:
			res = ev.Result
		case ev.Error != "":
			failure = errors.New(ev.Error)
		}
	}
	werr := h.cmd.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.res = res
	switch {
	case failure != nil:
		h.err = failure
	case res == nil && werr != nil:
		h.err = fmt.Errorf("worker exited without a result: %w", werr)
	case res == nil:
		h.err = errors.New("worker exited without a result")
	}
}

func (h *childHandle) send(line string) {
	h.inMu.Lock()
	defer h.inMu.Unlock()
	_, _ = io.WriteString(h.in, line)
}

func (h *childHandle) ready() <-chan struct{} { return h.readyC }
func (h *childHandle) start()                 { h.send("start\n") }
func (h *childHandle) stop()                  { h.send("stop\n") }

func (h *childHandle) progress() Progress {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.prog
}

// result waits for the child; one that does not finish within 30s of being
// asked is killed.
func (h *childHandle) result() (*Result, error) {
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	h.inMu.Lock()
	_ = h.in.Close()
	h.inMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.res, h.err
}
