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
	onPreview func(app.Context, protocol.Preview)
	onError   func(app.Context, error)
	onState   func(app.Context, connState)

	ws      app.Value
	funcs   []app.Func
	retries int
	stopped bool
}

func (s *socket) connect(ctx app.Context) {
	if s.stopped {
		return
	}
	s.release()
	s.onState(ctx, stateConnecting)
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
			s.onState(ctx, stateConnected)
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
