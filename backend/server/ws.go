package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"reword/backend/cluster"
	"reword/shared/protocol"
)

// Connection timing, as in gorilla/websocket's chat example: the writer
// pings well within the read deadline so an idle but healthy client is
// never dropped, and a dead one is noticed within pongWait.
const (
	writeWait  = 10 * time.Second
	pongWait   = 60 * time.Second
	pingPeriod = pongWait * 9 / 10
	// sendQueue and sendQueueBytes bound the JSON messages waiting for a
	// slow client, by count and by size (a result with heat maps is up to
	// about half a megabyte); past either the client is disconnected
	// (previews never count: see previews).
	sendQueue      = 256
	sendQueueBytes = 16 << 20
)

const closeGoingAway = websocket.CloseGoingAway

type upgrader = websocket.Upgrader

func newUpgrader(checkOrigin func(*http.Request) bool) upgrader {
	return websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 16384,
		CheckOrigin:     checkOrigin,
	}
}

// conn is one client socket: exactly one goroutine reads (readLoop) and
// one writes (writeLoop); everything else hands messages to the writer.
// JSON messages go through send in order and are never dropped; preview
// frames go through a slot per (request, row) that keeps only the newest,
// so a slow client gets fresh previews instead of a growing backlog.
type conn struct {
	s       *Server
	id      string // for logs
	addr    string // the client's address key: its limits and its turn in the queue
	ws      *websocket.Conn
	send    chan []byte
	done    chan struct{}
	limiter *rate.Limiter
	// queued is the bytes of the messages in send, and maxQueued its
	// bound (sendQueueBytes; a test lowers it).
	queued    atomic.Int64
	maxQueued int64

	mu           sync.Mutex
	jobs         map[string]cluster.Ticket // request id → ticket
	previews     map[previewKey][]byte
	previewOrder []previewKey
	previewReady chan struct{}
	violations   int       // rate-limit violations since windowStart
	windowStart  time.Time //
	closeOnce    sync.Once
	// closing is set once closeWith has sent a close frame: from then on
	// pongs no longer extend the read deadline that ends the socket.
	closing atomic.Bool
}

type previewKey struct {
	request string
	row     int
}

func newConnID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	addr := s.clients.Key(r)
	if status, msg := s.openSocket(addr); status != 0 {
		s.metrics.errors.WithLabelValues("sockets").Inc()
		http.Error(w, msg, status)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.closeSocket(addr)
		// The upgrader has already answered with an HTTP error.
		s.log.Info("websocket upgrade refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return
	}
	c := &conn{
		s: s, id: newConnID(), addr: addr, ws: ws,
		send: make(chan []byte, sendQueue), maxQueued: sendQueueBytes, done: make(chan struct{}),
		limiter:  rate.NewLimiter(rate.Limit(s.cfg.MessagesPerSecond), int(2*s.cfg.MessagesPerSecond)+1),
		jobs:     map[string]cluster.Ticket{},
		previews: map[previewKey][]byte{}, previewReady: make(chan struct{}, 1),
	}
	ws.SetReadLimit(protocol.MaxMessageBytes)
	s.mu.Lock()
	s.conns[c] = true
	s.mu.Unlock()
	s.log.Info("socket opened", "conn", c.id, "client", addr, "remote", r.RemoteAddr)
	c.sendMessage(protocol.TypeHello, "", s.hello())
	go c.writeLoop()
	c.readLoop()
}

// openSocket counts a socket of the client address addr about to open,
// or says why it may not: the server is shutting down, has MaxSockets
// open, or addr has SocketsPerAddress open. Refused before the upgrade,
// the answer is a plain HTTP error.
func (s *Server) openSocket(addr string) (status int, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return http.StatusServiceUnavailable, "the server is shutting down"
	case s.sockets >= s.cfg.MaxSockets:
		return http.StatusServiceUnavailable, fmt.Sprintf("the server has %d sockets open, its limit: try again later", s.cfg.MaxSockets)
	case s.addrSockets[addr] >= s.cfg.SocketsPerAddress:
		return http.StatusTooManyRequests, fmt.Sprintf("too many sockets from your address (%d open, the limit): close another tab or connection first", s.cfg.SocketsPerAddress)
	}
	s.sockets++
	s.addrSockets[addr]++
	return 0, ""
}

// closeSocket uncounts a socket that openSocket counted.
func (s *Server) closeSocket(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sockets--
	if s.addrSockets[addr]--; s.addrSockets[addr] <= 0 {
		delete(s.addrSockets, addr)
	}
}

func (c *conn) readLoop() {
	defer func() {
		close(c.done)
		c.ws.Close()
		c.cancelAll()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.closeSocket(c.addr)
		c.s.log.Info("socket closed", "conn", c.id)
	}()
	c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error {
		if c.closing.Load() {
			return nil
		}
		if err := c.ws.SetReadDeadline(time.Now().Add(pongWait)); err != nil {
			return err
		}
		if c.closing.Load() { // closeWith ran meanwhile: keep its deadline
			return c.ws.SetReadDeadline(time.Now().Add(time.Second))
		}
		return nil
	})
	for {
		typ, msg, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.closeWith(websocket.CloseMessageTooBig, "message over the 64 KiB limit")
			}
			return
		}
		if !c.limiter.Allow() {
			c.mu.Lock()
			if now := time.Now(); now.Sub(c.windowStart) > c.s.cfg.ViolationWindow {
				c.windowStart, c.violations = now, 0
			}
			c.violations++
			tooMany := c.violations > c.s.cfg.MaxViolations
			c.mu.Unlock()
			if tooMany {
				c.closeWith(websocket.ClosePolicyViolation, "too many messages")
				return
			}
			c.sendError("", &protocol.Error{Code: protocol.CodeTooMany, Message: "too many messages: slow down"})
			continue
		}
		if typ != websocket.TextMessage {
			c.sendError("", &protocol.Error{Code: protocol.CodeBadMessage, Message: "binary messages are not accepted; send JSON text"})
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
		c.sendError("", pe)
		return
	}
	switch p := m.Payload.(type) {
	case *protocol.Run:
		c.handleRun(m.ID, p)
	case *protocol.Cancel:
		c.handleCancel(m.ID)
	default:
		c.sendError(m.ID, &protocol.Error{Code: protocol.CodeUnknownType, Message: "message type " + string(m.Type) + " is sent by servers, not clients", Field: "type"})
	}
}

// sendMessage queues a JSON message for the writer. A client that lets
// sendQueue messages or sendQueueBytes pile up is disconnected rather than
// buffered forever.
func (c *conn) sendMessage(t protocol.Type, id string, payload any) {
	b, err := protocol.Encode(t, id, payload)
	if err != nil {
		c.s.log.Error("encoding a message", "type", t, "err", err)
		return
	}
	n := int64(len(b))
	if c.queued.Add(n) > c.maxQueued {
		c.queued.Add(-n)
		c.notReading()
		return
	}
	select {
	case c.send <- b:
	case <-c.done:
		c.queued.Add(-n)
	default:
		c.queued.Add(-n)
		c.notReading()
	}
}

// notReading disconnects a client whose messages piled up. It may run
// under the admission queue's lock (position updates, through
// sendMessage), so it never waits here for a stuck writer.
func (c *conn) notReading() {
	go c.closeWith(websocket.ClosePolicyViolation, "client is not reading its messages")
}

// unqueue is the writer's receipt for message b taken from send.
func (c *conn) unqueue(b []byte) { c.queued.Add(-int64(len(b))) }

// goAway closes the socket after the messages already queued for it, so
// that results and errors sent just before a shutdown still arrive.
func (c *conn) goAway(ctx context.Context) {
	select {
	case c.send <- nil: // the writer's cue to send the close frame
	case <-c.done:
		return
	case <-ctx.Done():
		c.closeWith(closeGoingAway, shutdownReason)
		return
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		c.closeWith(closeGoingAway, shutdownReason)
	}
}

const shutdownReason = "server shutting down"

func (c *conn) sendError(id string, e *protocol.Error) {
	c.s.metrics.errors.WithLabelValues(string(e.Code)).Inc()
	c.sendMessage(protocol.TypeError, id, e)
}

// pushPreview replaces the pending frame of the same request and row.
func (c *conn) pushPreview(k previewKey, frame []byte) {
	c.mu.Lock()
	if _, pending := c.previews[k]; !pending {
		c.previewOrder = append(c.previewOrder, k)
	}
	c.previews[k] = frame
	c.mu.Unlock()
	select {
	case c.previewReady <- struct{}{}:
	default:
	}
}

// dropPreviews forgets pending frames of a finished request, so that none
// is written after its result.
func (c *conn) dropPreviews(request string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.previewOrder[:0]
	for _, k := range c.previewOrder {
		if k.request == request {
			delete(c.previews, k)
		} else {
			kept = append(kept, k)
		}
	}
	c.previewOrder = kept
}

func (c *conn) takePreviews() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	frames := make([][]byte, 0, len(c.previewOrder))
	for _, k := range c.previewOrder {
		frames = append(frames, c.previews[k])
		delete(c.previews, k)
	}
	c.previewOrder = c.previewOrder[:0]
	return frames
}

func (c *conn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		msg := websocket.FormatCloseMessage(code, reason)
		c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait))
		// Unblock the reader; it cleans up.
		c.ws.SetReadDeadline(time.Now().Add(time.Second))
	})
}

func (c *conn) writeLoop() {
	ping := time.NewTicker(pingPeriod)
	defer func() {
		ping.Stop()
		c.ws.Close()
	}()
	write := func(typ int, b []byte) bool {
		c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		return c.ws.WriteMessage(typ, b) == nil
	}
	for {
		select {
		case b := <-c.send:
			c.unqueue(b)
			if b == nil { // goAway: everything queued before it is written
				c.closeWith(closeGoingAway, shutdownReason)
				return
			}
			if !write(websocket.TextMessage, b) {
				return
			}
		case <-c.previewReady:
			// JSON first: a request's "started" must precede its frames.
			for drained := false; !drained; {
				select {
				case b := <-c.send:
					c.unqueue(b)
					if b == nil {
						c.closeWith(closeGoingAway, shutdownReason)
						return
					}
					if !write(websocket.TextMessage, b) {
						return
					}
				default:
					drained = true
				}
			}
			for _, f := range c.takePreviews() {
				if !write(websocket.BinaryMessage, f) {
					return
				}
				c.s.metrics.previewsSent.Inc()
			}
		case <-ping.C:
			if !write(websocket.PingMessage, nil) {
				return
			}
		case <-c.done:
			return
		}
	}
}
