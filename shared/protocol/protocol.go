// Package protocol defines the messages that the browser, the CLI and the
// server exchange over Reword's WebSocket (/ws). One package is compiled for
// both the WebAssembly client and the server, so both sides agree on every
// field by construction; the server still validates everything it receives.
//
// Every text frame is one JSON envelope:
//
//	{"v":1,"type":"hello","id":"…","data":{…}}
//
// v is the protocol version, type selects the payload in data, and id is the
// client-chosen request id that ties server messages to the request they
// answer. Decoding is strict: unknown message types and unknown fields are
// errors, so that a client built against another version fails loudly
// instead of being half understood.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"reword/shared/edit"
	"reword/shared/limits"
)

// Version is the protocol version this build speaks.
const Version = 1

// MaxMessageBytes bounds one client text message; the server closes the
// socket of a client that sends more.
const MaxMessageBytes = 64 << 10

// MaxServerMessageBytes bounds one server text message as clients (and
// gateways, for the events workers publish) decode it. Results are the
// large ones: with heat maps at most five rows of 75 word tokens, each map
// up to 32×32 cells (the engine's cap), about 0.6 MB of JSON; 16×16 maps of
// long prompts already pass MaxMessageBytes.
const MaxServerMessageBytes = 2 << 20

// Type names a message kind.
type Type string

// Client → server message types.
const (
	// TypeRun asks for an edit (Run); the envelope id is the client-chosen
	// request id that every answer carries.
	TypeRun Type = "run"
	// TypeCancel stops the request whose id the envelope carries (Cancel).
	TypeCancel Type = "cancel"
)

// Server → client message types.
const (
	TypeHello    Type = "hello"    // first message on every connection (Hello)
	TypeQueued   Type = "queued"   // the request waits (Queued); sent again when the position changes
	TypeStarted  Type = "started"  // a worker runs the request (Started)
	TypeProgress Type = "progress" // one diffusion step is done (Progress)
	TypeResult   Type = "result"   // the final images (Result)
	TypeError    Type = "error"    // the request failed or a message was refused (Error)
)

// FromClient reports whether clients may send messages of type t.
func (t Type) FromClient() bool { return t == TypeRun || t == TypeCancel }

// Envelope is the outer form of every text message.
type Envelope struct {
	V    int             `json:"v"`
	Type Type            `json:"type"`
	ID   string          `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// Hello is the first message the server sends on a new connection.
type Hello struct {
	Server   string `json:"server"`   // build version of the server
	Protocol int    `json:"protocol"` // protocol version it speaks
	// Meaning is the version of what spec fields mean on this server
	// (edit.MeaningVersion; 0 from a server before the field, which ran
	// meaning 3 or earlier). A page of another meaning would make links
	// that open as other edits than the server ran, so the editor refuses
	// to run against it.
	Meaning int       `json:"meaning"`
	Model   ModelInfo `json:"model"`
	// Models lists every model the server runs when it runs several (a
	// cluster whose workers serve different models): Model then says that
	// none is chosen, and a run names one of these in spec.model. Left out
	// when the server runs one model or none.
	Models []ModelInfo `json:"models,omitempty"`
}

// ModelInfo describes the model a server runs and whether it can run it.
type ModelInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Ready bool   `json:"ready"`
	// Problem says why the model is not ready (missing files, load errors).
	Problem string `json:"problem,omitempty"`
	// Missing lists model files that were expected but not found.
	Missing []string `json:"missing,omitempty"`
	// Defaults are the values omitted spec fields take and the choices the
	// model accepts, for the editor's controls (only when Ready).
	Defaults *ModelDefaults `json:"defaults,omitempty"`
}

// ModelDefaults mirrors edit.Defaults in the public JSON form.
type ModelDefaults struct {
	Steps      int         `json:"steps"`
	Guidance   float64     `json:"guidance"`
	Sizes      [][2]int    `json:"sizes"`      // [width, height], the default first
	Schedulers []string    `json:"schedulers"` // the default first
	Cross      edit.Window `json:"cross"`
	// CrossChanged is the cross window of the words a word swap changes,
	// left out when the model has none (every token then takes Cross, as
	// servers before it ran).
	CrossChanged *edit.Window `json:"cross_changed,omitempty"`
	Self         edit.Window  `json:"self"`
	// BlendChanged is whether a spec without blend_changed blends its
	// targets on the words they change; left out when not.
	BlendChanged bool `json:"blend_changed,omitempty"`
	// BlendReweighted is whether a spec without blend_reweighted blends
	// its pure reweights on the words they reweight; left out when not.
	BlendReweighted bool `json:"blend_reweighted,omitempty"`
	// DecodeNorm is the decode_norm a spec without one runs with
	// ("source" or "swaps"); left out when each image decodes with its
	// own statistics.
	DecodeNorm string `json:"decode_norm,omitempty"`
	// Norm is the norm window a spec without one runs with; 0 (and left
	// out by servers before it): never.
	Norm       edit.Window `json:"norm"`
	Inversions []string    `json:"inversions"` // photo inversion methods, the default first
	MaxTargets int         `json:"max_targets"`
	// SelfLayers are the self-attention layers self_max_tokens chooses
	// from, one entry per query grid, coarsest first; SelfMaxTokens and
	// PhotoSelfMaxTokens the limits a spec without one runs with (a
	// generated source, a photo). Left out when the server does not know
	// them: older clients ignore them, and an editor then offers only the
	// default.
	SelfLayers         []SelfLayerGroup `json:"self_layers,omitempty"`
	SelfMaxTokens      int              `json:"self_max_tokens,omitempty"`
	PhotoSelfMaxTokens int              `json:"photo_self_max_tokens,omitempty"`
}

// SelfLayerGroup is edit.SelfLayerGroup in the public JSON form: the
// query grid [width, height] at the reference latent and its layer count.
type SelfLayerGroup struct {
	Grid   [2]int `json:"grid"`
	Layers int    `json:"layers"`
}

// DefaultsOf converts a model's spec defaults to their public form.
func DefaultsOf(d edit.Defaults) *ModelDefaults {
	out := &ModelDefaults{
		Steps: d.Steps, Guidance: d.Guidance, Schedulers: append([]string(nil), d.Schedulers...),
		Cross: d.Cross, Self: d.Self, Norm: d.Norm, Inversions: append([]string(nil), edit.Inversions...), MaxTargets: edit.MaxTargets,
	}
	for _, s := range d.Sizes {
		out.Sizes = append(out.Sizes, [2]int{s.Width, s.Height})
	}
	out.SelfMaxTokens, out.PhotoSelfMaxTokens = d.SelfMaxTokens, d.PhotoSelfMaxTokens
	out.CrossChanged, out.BlendChanged, out.DecodeNorm = clonedWindow(d.CrossChanged), d.BlendChanged, d.DecodeNorm
	out.BlendReweighted = d.BlendReweighted
	for _, g := range d.SelfLayers {
		out.SelfLayers = append(out.SelfLayers, SelfLayerGroup{Grid: [2]int{g.Grid.Width, g.Grid.Height}, Layers: g.Layers})
	}
	return out
}

// SpecDefaults converts the public form back to the model's spec
// defaults, for clients that validate specs as the server will.
func (d ModelDefaults) SpecDefaults(model string) edit.Defaults {
	out := edit.Defaults{Model: model, Schedulers: append([]string(nil), d.Schedulers...),
		Steps: d.Steps, Guidance: d.Guidance, Cross: d.Cross, Self: d.Self, Norm: d.Norm}
	for _, s := range d.Sizes {
		out.Sizes = append(out.Sizes, edit.Size{Width: s[0], Height: s[1]})
	}
	out.SelfMaxTokens, out.PhotoSelfMaxTokens = d.SelfMaxTokens, d.PhotoSelfMaxTokens
	out.CrossChanged, out.BlendChanged, out.DecodeNorm = clonedWindow(d.CrossChanged), d.BlendChanged, d.DecodeNorm
	out.BlendReweighted = d.BlendReweighted
	for _, g := range d.SelfLayers {
		out.SelfLayers = append(out.SelfLayers, edit.SelfLayerGroup{Grid: edit.Size{Width: g.Grid[0], Height: g.Grid[1]}, Layers: g.Layers})
	}
	return out
}

// clonedWindow is a copy of *w, or nil.
func clonedWindow(w *edit.Window) *edit.Window {
	if w == nil {
		return nil
	}
	c := *w
	return &c
}

// Run asks the server to render an edit. The server resolves omitted
// fields from its model's defaults and validates everything.
type Run struct {
	Spec edit.Spec `json:"spec"`
	// HeatMaps asks for the per-token attention maps in the result.
	HeatMaps bool `json:"heatmaps,omitempty"`
}

// Cancel stops a queued or running request.
type Cancel struct{}

// Queued says the request waits behind Position others (0 = next).
type Queued struct {
	Position int `json:"position"`
}

// Started says a worker took the request. Rows are the images the run
// produces, in preview and result order: the source first, then each target.
type Started struct {
	Rows  []Row `json:"rows"`
	Steps int   `json:"steps"`
	// Spec is the spec as the server will run it: every default filled in.
	Spec edit.Spec `json:"spec"`
}

// Row is one image of a run.
type Row struct {
	Index  int    `json:"index"`
	Role   string `json:"role"` // RoleSource or RoleTarget
	Prompt string `json:"prompt"`
}

// Row roles.
const (
	RoleSource = "source"
	RoleTarget = "target"
)

// Progress reports that Step of Total diffusion steps are done for every
// row of the request (rows are denoised together, in one batch).
type Progress struct {
	Step  int `json:"step"`
	Total int `json:"total"`
}

// Result is a finished request.
type Result struct {
	Images []Image `json:"images"`
	// Spec is the spec that was run, with every default filled in: running
	// it again reproduces the same images.
	Spec    edit.Spec `json:"spec"`
	Timings Timings   `json:"timings"`
	// Link is the edit-link fragment of Spec (shared/edit.EncodeLink).
	Link     string    `json:"link"`
	HeatMaps []HeatMap `json:"heatmaps,omitempty"`
	// Cached is true when the images came from the result cache without
	// running the model.
	Cached bool `json:"cached,omitempty"`
}

// Image is one final image, stored content-addressed.
type Image struct {
	Row    int    `json:"row"`
	Hash   string `json:"hash"` // SHA-256 of the PNG, hex
	URL    string `json:"url"`  // where the server serves it
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// Timings are measured by the server, in milliseconds.
type Timings struct {
	QueuedMS       float64 `json:"queued_ms"`
	RunMS          float64 `json:"run_ms"`
	FirstPreviewMS float64 `json:"first_preview_ms,omitempty"`
	StepMS         float64 `json:"step_ms,omitempty"`
}

// Milliseconds is d as Timings carry it: milliseconds, to the microsecond.
func Milliseconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// HeatMap is one token's attention map for one row, averaged over steps
// and layers, normalized to 0–255, row-major Height×Width. The grid is the
// model's finest cross-attention resolution up to 32×32 (16×16 on the tiny
// model); clients draw it at any Width × Height.
type HeatMap struct {
	Row    int    `json:"row"`
	Token  int    `json:"token"` // index into the row prompt's CLIP tokens (BOS = 0)
	Text   string `json:"text"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Values []byte `json:"values"` // base64 in JSON
}

// Error reports a failed request or a message the server could not accept.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	// Field is the path of the offending field, when there is one
	// (for example "targets[1]" or "data.spec.steps").
	Field string `json:"field,omitempty"`
	// Problems lists the invalid fields of a spec (code invalid_spec), so
	// that a client can show each next to its control: at most
	// edit.MaxProblems, the last then saying how many more were found.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one invalid field.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ErrorCode is a stable, machine-readable error class.
type ErrorCode string

// Error codes.
const (
	CodeBadMessage  ErrorCode = "bad_message"  // not valid JSON or not a valid envelope
	CodeUnknownType ErrorCode = "unknown_type" // a message type this version does not know
	CodeBadVersion  ErrorCode = "bad_version"  // protocol version mismatch
	CodeTooLarge    ErrorCode = "too_large"    // message over MaxMessageBytes
	CodeInternal    ErrorCode = "internal"     // the server failed; the request may be retried
	CodeInvalidSpec ErrorCode = "invalid_spec" // the edit spec is invalid; Field says where
	CodeBusy        ErrorCode = "busy"         // the queue is full; retry later
	CodeTooMany     ErrorCode = "too_many"     // this client has too many requests queued or is sending too fast
	CodeNotReady    ErrorCode = "not_ready"    // the model is not loaded
	CodeCancelled   ErrorCode = "cancelled"    // the request was cancelled
	CodeTimeout     ErrorCode = "timeout"      // the request ran too long
	CodeNotFound    ErrorCode = "not_found"    // a referenced photo or request does not exist (or expired)
	CodeDuplicateID ErrorCode = "duplicate_id" // a request with this id is already queued or running
	CodeShutdown    ErrorCode = "shutdown"     // the server is stopping
)

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (field %s)", e.Code, e.Message, e.Field)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// payloads maps each message type to a constructor of its payload, which is
// what makes decoding strict about types.
var payloads = map[Type]func() any{
	TypeRun:      func() any { return new(Run) },
	TypeCancel:   func() any { return new(Cancel) },
	TypeHello:    func() any { return new(Hello) },
	TypeQueued:   func() any { return new(Queued) },
	TypeStarted:  func() any { return new(Started) },
	TypeProgress: func() any { return new(Progress) },
	TypeResult:   func() any { return new(Result) },
	TypeError:    func() any { return new(Error) },
}

// Encode builds the JSON text of a message.
func Encode(t Type, id string, payload any) ([]byte, error) {
	if _, ok := payloads[t]; !ok {
		return nil, fmt.Errorf("protocol: cannot encode unknown message type %q", t)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("protocol: encoding %s payload: %w", t, err)
	}
	return json.Marshal(Envelope{V: Version, Type: t, ID: id, Data: data})
}

// Message is a decoded message: its envelope and its typed payload
// (*Hello, *Error, …).
type Message struct {
	Envelope
	Payload any
}

// Decode parses one message from a client strictly. The returned error is
// an *Error whose code says what was wrong, ready to send back to the peer.
func Decode(b []byte) (*Message, error) { return decode(b, MaxMessageBytes, true) }

// DecodeServer parses one message a server sends, which may be up to
// MaxServerMessageBytes long. Unlike Decode it ignores fields it does not
// know in the envelope and payload: a server adds fields (a hello's new
// defaults, say) within a protocol version, and an editor built before
// them, cached in a browser or deployed as a static site, must still talk
// to it. What the client sends stays strict, since the server re-validates
// everything. Edit specs inside a payload keep their own strict decoding.
func DecodeServer(b []byte) (*Message, error) { return decode(b, MaxServerMessageBytes, false) }

func decode(b []byte, limit int, strict bool) (*Message, error) {
	if len(b) > limit {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("message is %d bytes; the limit is %d", len(b), limit)}
	}
	var env Envelope
	if err := unmarshalOne(b, &env, strict); err != nil {
		return nil, &Error{Code: CodeBadMessage, Message: "invalid envelope: " + err.Error()}
	}
	if env.V != Version {
		return nil, &Error{Code: CodeBadVersion, Message: fmt.Sprintf("protocol version %d is not supported; this server speaks %d", env.V, Version), Field: "v"}
	}
	newPayload, ok := payloads[env.Type]
	if !ok {
		return nil, &Error{Code: CodeUnknownType, Message: fmt.Sprintf("unknown message type %q", env.Type), Field: "type"}
	}
	if len(env.ID) > limits.RequestIDBytes {
		return nil, &Error{Code: CodeBadMessage, Message: fmt.Sprintf("id is longer than %d bytes", limits.RequestIDBytes), Field: "id"}
	}
	p := newPayload()
	if len(env.Data) == 0 {
		return nil, &Error{Code: CodeBadMessage, Message: fmt.Sprintf("%s message has no data", env.Type), Field: "data"}
	}
	if err := unmarshalOne(env.Data, p, strict); err != nil {
		return nil, &Error{Code: CodeBadMessage, Message: fmt.Sprintf("invalid %s data: %v", env.Type, err), Field: "data"}
	}
	return &Message{Envelope: env, Payload: p}, nil
}

// unmarshalOne decodes exactly one JSON value, rejecting trailing data and,
// when strict, unknown fields.
func unmarshalOne(b []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
