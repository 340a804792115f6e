package clip

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// spanRune is one character of text being cleaned, with the byte span of the
// original text it stands for.
type spanRune struct {
	r          rune
	start, end int32
}

// cleaned is the text BPE runs on, with the original byte span of each of its
// bytes (the package doc lists the cleaning steps).
type cleaned struct {
	text       string
	start, end []int32
}

// clean applies the package's text cleaning to text and keeps, for every byte
// of the result, the span of text it came from.
func clean(text string) cleaned {
	runes := fixText(text)
	runes = composeNFC(runes)
	runes = collapseSpace(runes)
	return lower(runes)
}

// fixText decodes text and applies ftfy's per-character repairs: drop control
// and invisible format characters, straighten curly quotes, and replace
// full-width forms and Latin ligatures by their compatibility forms.
func fixText(text string) []spanRune {
	out := make([]spanRune, 0, len(text))
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		start, end := int32(i), int32(i+w)
		i += w
		switch {
		case removedControl(r):
			continue
		case r == 0x02BC || (r >= 0x2018 && r <= 0x201B):
			r = '\''
		case r >= 0x201C && r <= 0x201F:
			r = '"'
		case r == 0x3000:
			r = ' '
		case (r >= 0xFF01 && r <= 0xFFEF) || latinLigature(r):
			for _, c := range norm.NFKC.String(string(r)) {
				out = append(out, spanRune{c, start, end})
			}
			continue
		}
		out = append(out, spanRune{r, start, end})
	}
	return out
}

// removedControl reports the characters ftfy's remove_control_chars deletes:
// C0 controls except tab, line feed, form feed and carriage return; DEL;
// deprecated format characters; the byte-order mark; interlinear annotation
// marks; musical format characters; language tags.
func removedControl(r rune) bool {
	switch {
	case r < 0x20:
		return r != '\t' && r != '\n' && r != '\f' && r != '\r'
	case r == 0x7F, r == 0xFEFF:
		return true
	case r >= 0x206A && r <= 0x206F, r >= 0xFFF9 && r <= 0xFFFC,
		r >= 0x1D173 && r <= 0x1D17A, r >= 0xE0000 && r <= 0xE007F:
		return true
	}
	return false
}

// latinLigature reports the ligatures ftfy's fix_latin_ligatures expands.
func latinLigature(r rune) bool {
	return r == 0x0132 || r == 0x0133 || r == 0x0149 || (r >= 0x01C4 && r <= 0x01CC) ||
		(r >= 0xFB00 && r <= 0xFB06)
}

// composeNFC normalises to NFC. Normalisation segments (a starter and the
// marks that may combine with it) are composed independently; every rune of a
// composed segment gets the span of the whole segment.
func composeNFC(in []spanRune) []spanRune {
	var buf []byte
	for _, sr := range in {
		buf = utf8.AppendRune(buf, sr.r)
	}
	if norm.NFC.IsNormal(buf) {
		return in
	}
	out := make([]spanRune, 0, len(in))
	var seg []byte
	for i := 0; i < len(in); {
		j := i + 1
		for j < len(in) && !norm.NFC.PropertiesString(string(in[j].r)).BoundaryBefore() {
			j++
		}
		seg = seg[:0]
		for _, sr := range in[i:j] {
			seg = utf8.AppendRune(seg, sr.r)
		}
		if norm.NFC.IsNormal(seg) {
			out = append(out, in[i:j]...)
		} else {
			start, end := in[i].start, in[j-1].end
			for _, sr := range in[i:j] {
				start, end = min(start, sr.start), max(end, sr.end)
			}
			for _, r := range string(norm.NFC.Bytes(seg)) {
				out = append(out, spanRune{r, start, end})
			}
		}
		i = j
	}
	return out
}

// collapseSpace turns each run of white space into one space spanning the
// run and drops white space at both ends (whitespace_clean and strip).
func collapseSpace(in []spanRune) []spanRune {
	out := in[:0:0]
	pending := -1 // index in `in` where an unwritten white-space run starts
	for i, sr := range in {
		if unicode.IsSpace(sr.r) {
			if pending < 0 {
				pending = i
			}
			continue
		}
		if pending >= 0 && len(out) > 0 {
			out = append(out, spanRune{' ', in[pending].start, in[i-1].end})
		}
		pending = -1
		out = append(out, sr)
	}
	return out
}

// lower lowercases like Python's str.lower and encodes the result as UTF-8
// with per-byte spans.
func lower(in []spanRune) cleaned {
	var b strings.Builder
	b.Grow(len(in))
	start := make([]int32, 0, len(in))
	end := make([]int32, 0, len(in))
	for i, sr := range in {
		var s string
		switch {
		case sr.r == 'İ':
			// Python uses the full (SpecialCasing) mapping here.
			s = "i\u0307"
		case sr.r == 'Σ' && finalSigma(in, i):
			s = "ς"
		case sr.r < utf8.RuneSelf:
			if 'A' <= sr.r && sr.r <= 'Z' {
				sr.r += 'a' - 'A'
			}
			s = string(sr.r)
		default:
			s = string(unicode.ToLower(sr.r))
		}
		b.WriteString(s)
		for range len(s) {
			start = append(start, sr.start)
			end = append(end, sr.end)
		}
	}
	return cleaned{text: b.String(), start: start, end: end}
}

// finalSigma applies Unicode's Final_Sigma condition to the capital sigma at
// in[i]: a cased letter before it and none after it, skipping case-ignorable
// characters on both sides.
func finalSigma(in []spanRune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(in[j].r) {
		j--
	}
	if j < 0 || !cased(in[j].r) {
		return false
	}
	k := i + 1
	for k < len(in) && caseIgnorable(in[k].r) {
		k++
	}
	return k == len(in) || !cased(in[k].r)
}

func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', 0x00AD, 0x00B7, 0x2018, 0x2019, 0x2024, 0x2027:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
