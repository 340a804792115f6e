package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/websocket"

	"reword/shared/protocol"
)

// Connection timing, as in gorilla/websocket's chat example: the writer
// pings well within the read deadline so an idle but healthy client is
// never dropped, and a dead one is noticed within pongWait.
const (
	writeWait  = 10 * time.Second
	pongWait   = 60 * time.Second
	pingPeriod = pongWait * 9 / 10
	// sendQueue bounds the messages waiting for a slow client.
	sendQueue = 64
)

type upgrader = websocket.Upgrader

func newUpgrader(checkOrigin func(*http.Request) bool) upgrader {
	return websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 16384,
		CheckOrigin:     checkOrigin,
	}
}

// conn is one client socket: exactly one goroutine reads (readLoop) and
// one writes (writeLoop); everything else hands messages to the writer
// through send.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	send chan []byte
	done chan struct{}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has already answered with an HTTP error.
		s.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	c := &conn{s: s, ws: ws, send: make(chan []byte, sendQueue), done: make(chan struct{})}
	ws.SetReadLimit(protocol.MaxMessageBytes)
	hello, err := protocol.Encode(protocol.TypeHello, "", protocol.Hello{
		Server:   s.cfg.Version,
		Protocol: protocol.Version,
		Model:    s.ModelInfo(),
	})
	if err != nil {
		s.log.Error("encoding hello", "err", err)
		ws.Close()
		return
	}
	c.send <- hello
	go c.writeLoop()
	c.readLoop()
}

func (c *conn) readLoop() {
	defer func() {
		close(c.done)
		c.ws.Close()
	}()
	c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		typ, msg, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.closeWith(websocket.CloseMessageTooBig, "message over the size limit")
			}
			return
		}
		if typ != websocket.TextMessage {
			c.reply("", &protocol.Error{Code: protocol.CodeBadMessage, Message: "binary messages are not accepted; send JSON text"})
			continue
		}
		c.handle(msg)
	}
}

// handle answers one client message.
func (c *conn) handle(msg []byte) {
	m, err := protocol.Decode(msg)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			pe = &protocol.Error{Code: protocol.CodeBadMessage, Message: err.Error()}
		}
		c.reply("", pe)
		return
	}
	if !m.Type.FromClient() {
		c.reply(m.ID, &protocol.Error{Code: protocol.CodeUnknownType, Message: "message type " + string(m.Type) + " is sent by servers, not clients", Field: "type"})
		return
	}
	c.reply(m.ID, &protocol.Error{Code: protocol.CodeNotReady, Message: "this server does not run edits yet: the diffusion engine is not wired in"})
}

func (c *conn) reply(id string, e *protocol.Error) {
	b, err := protocol.Encode(protocol.TypeError, id, e)
	if err != nil {
		c.s.log.Error("encoding error reply", "err", err)
		return
	}
	select {
	case c.send <- b:
	default:
		// The client is not reading; drop the connection rather than block
		// the reader or buffer without bound.
		c.closeWith(websocket.ClosePolicyViolation, "client is not reading its messages")
	}
}

func (c *conn) closeWith(code int, reason string) {
	msg := websocket.FormatCloseMessage(code, reason)
	c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(pingPeriod)
	defer func() {
		ping.Stop()
		c.ws.Close()
	}()
	for {
		select {
		case b := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
		case <-ping.C:
			c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}
