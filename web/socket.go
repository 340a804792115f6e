package web

import (
	"errors"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// connState is the editor's view of its WebSocket.
type connState string

const (
	stateConnecting   connState = "connecting"
	stateConnected    connState = "connected"
	stateDisconnected connState = "disconnected"
)

// Reconnection backoff: doubling from the first delay up to the cap, so a
// restarted server is found again within a couple of seconds without
// hammering a dead one. Coming back online or to the tab retries at once.
const (
	firstRetryDelay = 500 * time.Millisecond
	maxRetryDelay   = 2 * time.Second
)

// Why a connection attempt started (socket.lastTry): the page loading, the
// backoff timer, the browser coming back online, the tab becoming visible.
const (
	tryStart   = "start"
	tryTimer   = "timer"
	tryOnline  = "online"
	tryVisible = "visible"
)

// socket keeps one WebSocket to the server open, reconnecting with backoff.
// It lives on the browser's event loop: callbacks arrive there and update
// the component through ctx.Dispatch.
type socket struct {
	url       string
	onMessage func(app.Context, *protocol.Message)
	onPreview func(app.Context, protocol.Preview)
	onError   func(app.Context, error)
	onState   func(app.Context, connState)

	ws      app.Value
	funcs   []app.Func
	retries int
	stopped bool
	state   connState
	// lastTry says why the latest attempt started (try…).
	lastTry string
	// timer counts scheduled retries: a retry runs only if no other
	// attempt started since it was scheduled.
	timer int
	wake  []listener // the online and visibilitychange listeners
}

// listener is an event listener the socket added to the page.
type listener struct {
	target app.Value
	event  string
	fn     app.Func
}

// start connects for the first time and retries at once when the browser
// comes back online or the tab becomes visible while disconnected.
func (s *socket) start(ctx app.Context) {
	listen := func(target app.Value, event string, ok func() bool, reason string) {
		f := app.FuncOf(func(app.Value, []app.Value) any {
			ctx.Dispatch(func(ctx app.Context) {
				if ok() && s.state == stateDisconnected {
					s.connect(ctx, reason)
				}
			})
			return nil
		})
		s.wake = append(s.wake, listener{target, event, f})
		target.Call("addEventListener", event, f)
	}
	doc := app.Window().Get("document")
	listen(app.Window(), "online", func() bool { return true }, tryOnline)
	listen(doc, "visibilitychange", func() bool { return doc.Get("visibilityState").String() == "visible" }, tryVisible)
	s.connect(ctx, tryStart)
}

func (s *socket) setState(ctx app.Context, st connState) {
	s.state = st
	s.onState(ctx, st)
}

func (s *socket) connect(ctx app.Context, reason string) {
	if s.stopped {
		return
	}
	s.release()
	s.timer++ // a pending retry is now moot
	s.lastTry = reason
	s.setState(ctx, stateConnecting)
	ws := app.Window().Get("WebSocket").New(s.url)
	// Preview frames arrive as ArrayBuffers, which copy into Go directly.
	ws.Set("binaryType", "arraybuffer")
	s.ws = ws
	on := func(event string, fn func(app.Value)) {
		f := app.FuncOf(func(this app.Value, args []app.Value) any {
			var ev app.Value
			if len(args) > 0 {
				ev = args[0]
			}
			fn(ev)
			return nil
		})
		s.funcs = append(s.funcs, f)
		ws.Set(event, f)
	}
	on("onopen", func(app.Value) {
		ctx.Dispatch(func(ctx app.Context) {
			s.retries = 0
			s.setState(ctx, stateConnected)
		})
	})
	on("onmessage", func(ev app.Value) {
		data := ev.Get("data")
		if data.Type() != app.TypeString {
			buf := app.Window().Get("Uint8Array").New(data)
			b := make([]byte, buf.Length())
			app.CopyBytesToGo(b, buf)
			p, err := protocol.DecodePreview(b)
			ctx.Dispatch(func(ctx app.Context) {
				if err != nil {
					s.onError(ctx, err)
					return
				}
				s.onPreview(ctx, p)
			})
			return
		}
		msg, err := protocol.DecodeServer([]byte(data.String()))
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				s.onError(ctx, err)
				return
			}
			s.onMessage(ctx, msg)
		})
	})
	on("onclose", func(app.Value) {
		if !ws.Equal(s.ws) {
			return // a socket we already replaced
		}
		ctx.Dispatch(func(ctx app.Context) {
			s.setState(ctx, stateDisconnected)
			s.scheduleRetry(ctx)
		})
	})
}

func (s *socket) scheduleRetry(ctx app.Context) {
	if s.stopped {
		return
	}
	delay := min(firstRetryDelay<<min(s.retries, 8), maxRetryDelay)
	s.retries++
	s.timer++
	timer := s.timer
	ctx.After(delay, func(ctx app.Context) {
		if timer == s.timer && s.state == stateDisconnected {
			s.connect(ctx, tryTimer)
		}
	})
}

// send writes one text message. It fails when the socket is not open, so
// the caller can tell the user instead of losing the request.
func (s *socket) send(b []byte) error {
	if s.ws == nil || !s.ws.Truthy() || s.ws.Get("readyState").Int() != 1 {
		return errors.New("not connected to the server; it retries on its own, try again in a moment")
	}
	s.ws.Call("send", string(b))
	return nil
}

// close stops the socket for good (the component is going away).
func (s *socket) close() {
	s.stopped = true
	s.release()
	for _, l := range s.wake {
		l.target.Call("removeEventListener", l.event, l.fn)
		l.fn.Release()
	}
	s.wake = nil
}

func (s *socket) release() {
	if s.ws != nil && s.ws.Truthy() {
		for _, ev := range []string{"onopen", "onmessage", "onclose"} {
			s.ws.Set(ev, nil)
		}
		s.ws.Call("close")
	}
	for _, f := range s.funcs {
		f.Release()
	}
	s.funcs = nil
	s.ws = nil
}
