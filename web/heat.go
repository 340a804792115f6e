package web

import "reword/shared/protocol"

// wordHeat averages the heat maps of a word's tokens in one row of a result,
// the map the editor overlays when the word is hovered. It returns nil when
// the result has no map for any of the tokens (heat maps not requested, or a
// word past the context).
func wordHeat(maps []protocol.HeatMap, row int, tokens []int) (w, h int, values []byte) {
	var sum []int
	n := 0
	for _, m := range maps {
		if m.Row != row || !containsInt(tokens, m.Token) || len(m.Values) != m.Width*m.Height {
			continue
		}
		if sum == nil {
			w, h, sum = m.Width, m.Height, make([]int, len(m.Values))
		}
		if m.Width != w || m.Height != h {
			continue
		}
		for i, v := range m.Values {
			sum[i] += int(v)
		}
		n++
	}
	if n == 0 {
		return 0, 0, nil
	}
	values = make([]byte, len(sum))
	for i, s := range sum {
		values[i] = byte(s / n)
	}
	return w, h, values
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
