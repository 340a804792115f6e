package web

import (
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
// restarted server is found again quickly without hammering a dead one.
const (
	firstRetryDelay = 500 * time.Millisecond
	maxRetryDelay   = 15 * time.Second
)

// socket keeps one WebSocket to the server open, reconnecting with backoff.
// It lives on the browser's event loop: callbacks arrive there and update
// the component through ctx.Dispatch.
type socket struct {
	url       string
	onMessage func(app.Context, *protocol.Message)
	onError   func(app.Context, error)
	onState   func(app.Context, connState)

	ws      app.Value
	funcs   []app.Func
	retries int
	stopped bool
}

// wsURL is the backend's WebSocket address: the build-time override for a
// front end hosted elsewhere, else /ws on the page's own origin.
func wsURL() string {
	if u := app.Getenv(WebSocketURLEnv); u != "" {
		return u
	}
	loc := app.Window().Get("location")
	scheme := "ws://"
	if loc.Get("protocol").String() == "https:" {
		scheme = "wss://"
	}
	return scheme + loc.Get("host").String() + "/ws"
}

func (s *socket) connect(ctx app.Context) {
	if s.stopped {
		return
	}
	s.release()
	s.onState(ctx, stateConnecting)
	ws := app.Window().Get("WebSocket").New(s.url)
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
			s.onState(ctx, stateConnected)
		})
	})
	on("onmessage", func(ev app.Value) {
		data := ev.Get("data")
		if data.Type() != app.TypeString {
			return // binary preview frames arrive with the edit issue
		}
		msg, err := protocol.Decode([]byte(data.String()))
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
			s.onState(ctx, stateDisconnected)
			s.scheduleRetry(ctx)
		})
	})
}

func (s *socket) scheduleRetry(ctx app.Context) {
	if s.stopped {
		return
	}
	delay := firstRetryDelay << min(s.retries, 8)
	delay = min(delay, maxRetryDelay)
	s.retries++
	ctx.After(delay, s.connect)
}

// close stops the socket for good (the component is going away).
func (s *socket) close() {
	s.stopped = true
	s.release()
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
