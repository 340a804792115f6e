package web

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// Editor is the main page.
type Editor struct {
	app.Compo

	// mounted is true once the WebAssembly has taken over the prerendered
	// page; tests wait for the root's data-ready attribute.
	mounted bool
	conn    connState
	hello   *protocol.Hello
	problem string
	sock    *socket
}

// OnMount starts the connection to the server (in the browser only).
func (e *Editor) OnMount(ctx app.Context) {
	if !app.IsClient {
		return
	}
	e.mounted = true
	e.sock = &socket{
		url: wsURL(),
		onState: func(ctx app.Context, s connState) {
			e.conn = s
		},
		onMessage: e.handleMessage,
		onError: func(ctx app.Context, err error) {
			e.problem = "The server sent a message this page cannot read: " + err.Error()
		},
	}
	e.sock.connect(ctx)
}

// OnDismount closes the connection.
func (e *Editor) OnDismount() {
	if e.sock != nil {
		e.sock.close()
	}
}

func (e *Editor) handleMessage(ctx app.Context, m *protocol.Message) {
	switch p := m.Payload.(type) {
	case *protocol.Hello:
		e.hello = p
		e.problem = ""
		if p.Protocol != protocol.Version {
			e.problem = fmt.Sprintf("The server speaks protocol %d; this page speaks %d. Reload the page.", p.Protocol, protocol.Version)
		}
	case *protocol.Error:
		e.problem = p.Message
	}
}

// Render draws the page.
func (e *Editor) Render() app.UI {
	return app.Div().ID("app").Class("app").
		DataSet("ready", e.mounted).
		Body(
			app.Header().Class("topbar").Body(
				app.Img().Src("/web/icon.svg").Alt("").Width(32).Height(32),
				app.H1().Text("Reword"),
				app.Span().Class("tagline").Text("edit an image by rewording its prompt"),
				e.renderStatus(),
			),
			app.If(e.hello != nil && !e.hello.Model.Ready, func() app.UI {
				return app.P().ID("model-problem").Class("notice problem").Text(
					"The model is not ready: " + e.hello.Model.Problem)
			}),
			app.If(e.problem != "", func() app.UI {
				return app.P().Class("notice problem").Role("alert").Text(e.problem)
			}),
		)
}

func (e *Editor) renderStatus() app.UI {
	label := "offline"
	switch {
	case !e.mounted:
		label = "loading"
	case e.conn == stateConnected && e.hello != nil:
		label = fmt.Sprintf("connected · server %s · model %s", e.hello.Server, e.hello.Model.ID)
	case e.conn == stateConnected:
		label = "connected"
	case e.conn == stateConnecting:
		label = "connecting…"
	case e.conn == stateDisconnected:
		label = "disconnected, retrying…"
	}
	return app.Div().ID("status").Class("status").DataSet("state", string(e.conn)).Aria("live", "polite").Body(
		app.Span().Class("dot "+string(e.conn)),
		app.Span().ID("status-text").Text(label),
	)
}
