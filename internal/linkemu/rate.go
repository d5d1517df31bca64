package linkemu

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// rateUnits are ParseRate's units in bytes per second: bits with decimal
// prefixes as tc and link speeds are written ("1gbit" is 10^9 bits/s), and
// bytes with binary prefixes as the benchmarks report ("100MiB").
var rateUnits = []struct {
	suffix string
	bytes  float64
}{
	{"kbit", 1e3 / 8}, {"mbit", 1e6 / 8}, {"gbit", 1e9 / 8}, {"tbit", 1e12 / 8}, {"bit", 1.0 / 8},
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"b", 1},
}

// ParseRate reads a link rate: a number and a unit, case-insensitive, with
// an optional "/s": "1gbit" (10^9 bits/s, 125,000,000 B/s), "100mbit",
// "500kbit", "64bit", "119MiB", "512KiB/s", "1GiB", "1000B". "0" means
// unlimited. It returns bytes per second; a rate below 1 B/s, a negative
// one and one above 2^53 B/s are errors.
func ParseRate(s string) (int64, error) {
	in := strings.ToLower(strings.TrimSpace(s))
	in = strings.TrimSuffix(in, "/s")
	if in == "0" {
		return 0, nil
	}
	for _, u := range rateUnits {
		num, ok := strings.CutSuffix(in, u.suffix)
		if !ok {
			continue
		}
		num = strings.TrimSpace(num)
		v, err := strconv.ParseFloat(num, 64)
		if err != nil || !decimal(num) {
			return 0, fmt.Errorf("link rate %q: %q is not a number (write e.g. 1gbit, 100mbit or 119MiB)", s, num)
		}
		b := v * u.bytes
		if math.IsNaN(b) || b < 1 || b > 1<<53 {
			return 0, fmt.Errorf("link rate %q: out of range (from 1 B/s to 2^53 B/s, or 0 for unlimited)", s)
		}
		return int64(math.Round(b)), nil
	}
	return 0, fmt.Errorf("link rate %q: no unit (write e.g. 1gbit, 100mbit, 119MiB, or 0 for unlimited)", s)
}

// FormatRate prints bytes per second as ParseRate reads them back, in the
// largest bit unit that divides it, else in B: 125000000 → "1gbit",
// 0 → "unlimited".
func FormatRate(bps int64) string {
	if bps <= 0 {
		return "unlimited"
	}
	bits := bps * 8
	for _, u := range []struct {
		name string
		div  int64
	}{{"tbit", 1e12}, {"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bits%u.div == 0 && bps <= math.MaxInt64/8 {
			return strconv.FormatInt(bits/u.div, 10) + u.name
		}
	}
	return strconv.FormatInt(bps, 10) + "B"
}

// decimal reports whether s is digits with at most one '.' among them.
func decimal(s string) bool {
	digits, dots := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}
