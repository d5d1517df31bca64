package linkemu

import (
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  string
	}{
		{"1gbit", 125_000_000, ""},
		{"1Gbit", 125_000_000, ""},
		{"1gbit/s", 125_000_000, ""},
		{" 100mbit ", 12_500_000, ""},
		{"2.5gbit", 312_500_000, ""},
		{"500kbit", 62_500, ""},
		{"64bit", 8, ""},
		{"1tbit", 125_000_000_000, ""},
		{"119MiB", 119 << 20, ""},
		{"512KiB/s", 512 << 10, ""},
		{"1GiB", 1 << 30, ""},
		{"1000B", 1000, ""},
		{"1000b", 1000, ""},
		{"0", 0, ""},
		{"0gbit", 0, "out of range"},
		{"4bit", 0, "out of range"},
		{"-1gbit", 0, "not a number"},
		{"1e9bit", 0, "not a number"},
		{"1..2mbit", 0, "not a number"},
		{"gbit", 0, "not a number"},
		{"infgbit", 0, "not a number"},
		{"NaNmbit", 0, "not a number"},
		{"0x10mbit", 0, "not a number"},
		{"1gb", 0, "not a number"},
		{"100", 0, "no unit"},
		{"", 0, "no unit"},
		{"fast", 0, "no unit"},
		{"99999999999tbit", 0, "out of range"},
	} {
		got, err := ParseRate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRate(%q) = %d, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestFormatRate(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{
		{125_000_000, "1gbit"},
		{12_500_000, "100mbit"},
		{62_500, "500kbit"},
		{119 << 20, "124780544B"},
		{1000, "8kbit"},
		{3, "3B"},
		{0, "unlimited"},
	} {
		if got := FormatRate(tc.in); got != tc.want {
			t.Errorf("FormatRate(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever the text, ParseRate does not panic, and what it accepts is in
// range and survives FormatRate.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"1gbit", "100mbit/s", "119MiB", "0", "2.5gbit", "1e9bit", "-1B", "9999999999999tbit", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseRate(s)
		if err != nil {
			if v != 0 {
				t.Fatalf("ParseRate(%q) = %d with error %v", s, v, err)
			}
			return
		}
		if v < 0 || v > 1<<53 {
			t.Fatalf("ParseRate(%q) = %d: out of range", s, v)
		}
		back, err := ParseRate(FormatRate(v))
		if v == 0 {
			if FormatRate(v) != "unlimited" {
				t.Fatalf("FormatRate(0) = %q", FormatRate(v))
			}
			return
		}
		if err != nil || back != v {
			t.Fatalf("ParseRate(FormatRate(%d) = %q) = %d, %v", v, FormatRate(v), back, err)
		}
	})
}
