// Package limits holds the bounds and defaults that more than one part of
// Reword applies: the editor checks them before it sends, the server and
// the cluster enforce them, and reword serve's flags start from them. It
// is compiled for the browser and the server, so both read one number.
//
// Limits of a format live with the format: an edit spec's (prompt bytes,
// targets, steps) in shared/edit, a message's size in shared/protocol.
package limits

import "time"

// Uploads.
const (
	// UploadBytes caps one uploaded photo file.
	UploadBytes = 20 << 20
	// UploadPixels caps an uploaded photo's decoded size, checked from its
	// header before decoding, so that a decompression bomb is refused
	// without being expanded. 16 MP holds a 12 MP phone photo; the model
	// sees at most 512×512 of it.
	UploadPixels = 16_000_000
	// UploadDecodeBytes caps the memory one decode may take, estimated
	// from the header: 16 MP at up to 8 bytes per pixel (a 16-bit PNG, a
	// progressive 4:2:0 JPEG) fits; a progressive 4:4:4 JPEG (15 bytes
	// per pixel) must be smaller.
	UploadDecodeBytes = 160 << 20
	// UploadsAtOnce bounds the uploads read and decoded at once, so
	// that memory stays below UploadsAtOnce × (UploadBytes +
	// UploadDecodeBytes); more are refused as busy.
	UploadsAtOnce = 2
	// UploadsPerMinute limits the uploads of one client address, with
	// bursts of UploadBurst.
	UploadsPerMinute = 10
	UploadBurst      = 5
	// UploadTimeout bounds the time one upload's body may take to
	// arrive (20 MiB at 2 Mbit/s).
	UploadTimeout = 90 * time.Second
)

// HTTP connections.
const (
	// ReadTimeout bounds reading one request other than an upload,
	// headers and body; HeaderTimeout its headers alone.
	ReadTimeout   = 30 * time.Second
	HeaderTimeout = 10 * time.Second
	// IdleTimeout closes a keep-alive connection with no request.
	IdleTimeout = 2 * time.Minute
)

// RequestIDBytes bounds a client's request id. Every answer carries it,
// and preview frames give it one length byte.
const RequestIDBytes = 128

// Jobs.
const (
	// JobsPerClient bounds the edits one client — one address, however
	// many sockets it opens — has queued or running, at the server and in
	// a gateway's admission queue, where clients take turns by address.
	JobsPerClient = 4
	// QueuedJobs bounds the edits waiting: in the job stream (waiting or
	// running), and in one gateway's admission queue per model. More are
	// refused as busy.
	QueuedJobs = 64
	// JobTimeout stops an edit that runs longer.
	JobTimeout = 10 * time.Minute
)

// Sockets.
const (
	// SocketsPerAddress bounds the WebSockets one client address has
	// open: a browser tab is one, so this leaves room for a household
	// behind one address, not for a flood.
	SocketsPerAddress = 16
	// Sockets bounds the WebSockets open in all.
	Sockets = 1024
)

// MessagesPerSecond limits what one socket sends, with bursts of twice
// that. A socket is closed after MessageViolations messages over the
// limit within ViolationWindow.
const (
	MessagesPerSecond = 10
	MessageViolations = 20
	ViolationWindow   = 10 * time.Second
)

// StoreBytes caps the stored images; the least recently used are evicted
// beyond it.
const StoreBytes = 1 << 30
