package attnblock

import (
	"fmt"
	"math"

	"reword/backend/graph"
)

// Inputs are the values fed to the network for one call.
type Inputs struct {
	Batch    int
	Sample   []float32 // [B, C, H, W]
	Timestep []float64 // [B], converted to the model's timestep type when fed
	Context  []float32 // [B, T, CtxDim]
}

// Result is what Reference computes.
type Result struct {
	Out []float64 // [B, C, H, W]
	// Maps holds, for each cross-attention layer by name, the probabilities
	// after the edit averaged over heads, for the last 1+E rows (the cond
	// rows): [1+E, N, T]. Only filled when controls are given.
	Maps map[string][]float64
}

// edit is how Reference applies Prompt-to-Prompt controls.
type edit struct {
	ctl            *graph.Controls
	selfMaxQueries int
}

// Reference computes the network in float64. With ctl nil it is the
// original network; otherwise the last 1+E rows of the batch are the cond
// source and targets, every cross-attention layer applies
// A_tgt ← A_src·W + A_tgt ⊙ c, and self-attention layers with at most
// selfMaxQueries queries apply O_tgt ← s·(A_src·V_tgt) + (1−s)·O_tgt.
func (n *Network) Reference(in Inputs, ctl *graph.Controls, selfMaxQueries int) (Result, error) {
	c := n.Cfg
	B := in.Batch
	full, half := c.Height*c.Width, c.Height*c.Width/4
	if len(in.Sample) != B*c.Channels*full || len(in.Timestep) != B || len(in.Context) != B*c.Tokens*c.CtxDim {
		return Result{}, fmt.Errorf("attnblock: input sizes do not match batch %d", B)
	}
	if ctl != nil {
		if err := ctl.Validate(); err != nil {
			return Result{}, err
		}
		if ctl.Tokens != c.Tokens || B < ctl.Targets+1 {
			return Result{}, fmt.Errorf("attnblock: controls for %d targets × %d tokens do not fit batch %d × %d tokens", ctl.Targets, ctl.Tokens, B, c.Tokens)
		}
	}
	ed := edit{ctl: ctl, selfMaxQueries: selfMaxQueries}
	res := Result{Maps: map[string][]float64{}}
	ctx := widen(in.Context)

	// conv_in (a per-position linear map) plus the time embedding.
	hs := make([]float64, B*full*c.Dim)
	for b := 0; b < B; b++ {
		for pos := 0; pos < full; pos++ {
			for o := 0; o < c.Dim; o++ {
				s := in.Timestep[b] * 1e-3 * float64(n.timeVec[o])
				for ch := 0; ch < c.Channels; ch++ {
					s += float64(in.Sample[(b*c.Channels+ch)*full+pos]) * float64(n.win[ch*c.Dim+o])
				}
				hs[(b*full+pos)*c.Dim+o] = s
			}
		}
	}
	hs = n.refBlock(0, hs, ctx, B, full, ed, res.Maps)
	skip := hs
	// 2×2 stride-2 convolution.
	halfH, halfW := c.Height/2, c.Width/2
	down := make([]float64, B*half*c.Dim)
	for b := 0; b < B; b++ {
		for y := 0; y < halfH; y++ {
			for x := 0; x < halfW; x++ {
				for o := 0; o < c.Dim; o++ {
					s := float64(n.downBias[o])
					for k := 0; k < 4; k++ {
						src := (b*full + (2*y+k/2)*c.Width + 2*x + k%2) * c.Dim
						for ci := 0; ci < c.Dim; ci++ {
							s += hs[src+ci] * float64(n.down[(ci*4+k)*c.Dim+o])
						}
					}
					down[(b*half+y*halfW+x)*c.Dim+o] = s
				}
			}
		}
	}
	hs = n.refBlock(1, down, ctx, B, half, ed, res.Maps)
	// Nearest-neighbour ×2 upsampling plus the skip connection.
	up := make([]float64, B*full*c.Dim)
	for b := 0; b < B; b++ {
		for y := 0; y < c.Height; y++ {
			for x := 0; x < c.Width; x++ {
				dst := (b*full + y*c.Width + x) * c.Dim
				src := (b*half + (y/2)*halfW + x/2) * c.Dim
				for o := 0; o < c.Dim; o++ {
					up[dst+o] = hs[src+o] + skip[dst+o]
				}
			}
		}
	}
	hs = n.refBlock(2, up, ctx, B, full, ed, res.Maps)
	res.Out = make([]float64, B*c.Channels*full)
	for b := 0; b < B; b++ {
		for pos := 0; pos < full; pos++ {
			for ch := 0; ch < c.Channels; ch++ {
				s := 0.0
				for o := 0; o < c.Dim; o++ {
					s += hs[(b*full+pos)*c.Dim+o] * float64(n.wout[o*c.Channels+ch])
				}
				res.Out[(b*c.Channels+ch)*full+pos] = s
			}
		}
	}
	if ctl == nil {
		res.Maps = nil
	}
	return res, nil
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func (n *Network) refBlock(i int, hs, ctx []float64, B, npos int, ed edit, maps map[string][]float64) []float64 {
	b := n.blocks[i]
	a := n.refAttention(b.scope+"/attn1", b.attn1, hs, hs, B, npos, npos, false, ed, maps)
	for k := range hs {
		a[k] += hs[k]
	}
	hs = a
	a = n.refAttention(b.scope+"/attn2", b.attn2, hs, ctx, B, npos, n.Cfg.Tokens, true, ed, maps)
	for k := range hs {
		a[k] += hs[k]
	}
	return a
}

// matmul returns a [rows, inner] · w [inner, cols].
func matmul(a []float64, rows, inner int, w []float32, cols int) []float64 {
	out := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		o := out[r*cols : (r+1)*cols]
		for k := 0; k < inner; k++ {
			av := a[r*inner+k]
			for j, wv := range w[k*cols : (k+1)*cols] {
				o[j] += av * float64(wv)
			}
		}
	}
	return out
}

func (n *Network) refAttention(name string, w attnWeights, xq, xkv []float64, B, nq, nk int, cross bool, ed edit, maps map[string][]float64) []float64 {
	D := n.Cfg.Dim
	q := matmul(xq, B*nq, w.in, w.wq, D)
	k := matmul(xkv, B*nk, w.ctxIn, w.wk, D)
	v := matmul(xkv, B*nk, w.ctxIn, w.wv, D)
	p := softmaxQK(q, k, B, n.Cfg.Heads, nq, nk, D)
	if ed.ctl != nil && cross {
		p.editCross(ed.ctl)
		maps[name] = p.condMaps(ed.ctl.Targets)
	}
	o := p.apply(v, ed, cross)
	out := matmul(o, B*nq, D, w.wo, D)
	for r := 0; r < B*nq; r++ {
		for j := 0; j < D; j++ {
			out[r*D+j] += float64(w.bo[j])
		}
	}
	return out
}

// probs are one attention layer's probabilities, [B, H, nq, nk].
type probs struct {
	P              []float64
	B, H, nq, nk   int
	dim, headWidth int
}

func (p probs) row(b, h, i int) []float64 {
	o := ((b*p.H+h)*p.nq + i) * p.nk
	return p.P[o : o+p.nk]
}

// softmaxQK computes softmax(q·kᵀ/√d) per head.
func softmaxQK(q, k []float64, B, H, nq, nk, D int) probs {
	d := D / H
	p := probs{P: make([]float64, B*H*nq*nk), B: B, H: H, nq: nq, nk: nk, dim: D, headWidth: d}
	scale := 1 / math.Sqrt(float64(d))
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < nq; i++ {
				r := p.row(b, h, i)
				mx := math.Inf(-1)
				for j := 0; j < nk; j++ {
					s := 0.0
					for t := 0; t < d; t++ {
						s += q[(b*nq+i)*D+h*d+t] * k[(b*nk+j)*D+h*d+t]
					}
					r[j] = s * scale
					mx = math.Max(mx, r[j])
				}
				sum := 0.0
				for j := range r {
					r[j] = math.Exp(r[j] - mx)
					sum += r[j]
				}
				for j := range r {
					r[j] /= sum
				}
			}
		}
	}
	return p
}

// editCross applies A_tgt ← A_src·W + A_tgt ⊙ c to the last E rows, the
// source being the row before them.
func (p probs) editCross(ctl *graph.Controls) {
	E, T := ctl.Targets, ctl.Tokens
	srcRow := p.B - E - 1
	for e := 0; e < E; e++ {
		tgt := p.B - E + e
		for h := 0; h < p.H; h++ {
			for i := 0; i < p.nq; i++ {
				src, t := p.row(srcRow, h, i), p.row(tgt, h, i)
				edited := make([]float64, p.nk)
				for j := 0; j < p.nk; j++ {
					s := t[j] * float64(ctl.CrossC[e*T+j])
					for w := 0; w < p.nk; w++ {
						s += src[w] * float64(ctl.CrossW[(e*T+w)*T+j])
					}
					edited[j] = s
				}
				copy(t, edited)
			}
		}
	}
}

// condMaps averages the last 1+E rows' probabilities over the heads:
// [1+E, nq, nk].
func (p probs) condMaps(E int) []float64 {
	srcRow := p.B - E - 1
	m := make([]float64, (1+E)*p.nq*p.nk)
	for r := 0; r <= E; r++ {
		for h := 0; h < p.H; h++ {
			for i := 0; i < p.nq; i++ {
				for j, v := range p.row(srcRow+r, h, i) {
					m[(r*p.nq+i)*p.nk+j] += v / float64(p.H)
				}
			}
		}
	}
	return m
}

// apply computes O = P·V per head, [B, nq, D]; edited self layers mix in
// A_src·V_tgt.
func (p probs) apply(v []float64, ed edit, cross bool) []float64 {
	D, d := p.dim, p.headWidth
	ctl := ed.ctl
	E := 0
	if ctl != nil {
		E = ctl.Targets
	}
	srcRow := p.B - E - 1
	pv := func(pb, vb, h, i int) []float64 {
		out := make([]float64, d)
		for j, w := range p.row(pb, h, i) {
			for t := 0; t < d; t++ {
				out[t] += w * v[(vb*p.nk+j)*D+h*d+t]
			}
		}
		return out
	}
	o := make([]float64, p.B*p.nq*D)
	selfEdit := ctl != nil && !cross && p.nq <= ed.selfMaxQueries
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.H; h++ {
			for i := 0; i < p.nq; i++ {
				out := pv(b, b, h, i)
				if e := b - (p.B - E); selfEdit && e >= 0 {
					s := float64(ctl.SelfW[e])
					rep := pv(srcRow, b, h, i)
					for t := range out {
						out[t] = s*rep[t] + (1-s)*out[t]
					}
				}
				copy(o[(b*p.nq+i)*D+h*d:], out)
			}
		}
	}
	return o
}
