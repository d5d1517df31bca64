package config

import (
	"fmt"
	"sort"
	"strings"
)

// A Diagnostic is one problem found in a file, located at a line and column
// (both 1-based; column counts characters, not bytes).
type Diagnostic struct {
	File    string
	Line    int
	Col     int
	Message string
}

func (d Diagnostic) Error() string {
	file := d.File
	if file == "" {
		file = "<input>"
	}
	return fmt.Sprintf("%s:%d:%d: %s", file, d.Line, d.Col, d.Message)
}

// Diagnostics is every problem found in one read, in file order. It is an
// error whose text is one FILE:LINE:COL: message line per problem.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

func (ds Diagnostics) sorted() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].Line != ds[j].Line {
			return ds[i].Line < ds[j].Line
		}
		return ds[i].Col < ds[j].Col
	})
	return ds
}
